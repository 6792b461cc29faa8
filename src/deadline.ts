/** What `within` answers when the time ran out first. */
export const EXPIRED: unique symbol = Symbol('ninja-auth.expired');

/**
 * Waits for `work`, but never longer than `ms`; the timer is always cleared. With `unref`, the timer alone does
 * not keep the process alive. A rejection of `work` is passed on.
 */
export async function within<T>(work: PromiseLike<T>, ms: number, options: { unref?: boolean } = {}): Promise<T | typeof EXPIRED> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<typeof EXPIRED>((resolve) => {
    timer = setTimeout(() => resolve(EXPIRED), ms);
    if (options.unref === true) timer.unref();
  });
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}
