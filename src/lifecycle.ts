import { EXPIRED, within } from './deadline.js';

/**
 * What the router has in flight, for `router.close()`: every request from the moment the router takes it until
 * its answer is out, its reply is in the store and the hooks it started have settled.
 */
export class Lifecycle {
  readonly #inFlight = new Set<Promise<unknown>>();
  #state: 'open' | 'closing' | 'closed' = 'open';
  #closing: Promise<void> | undefined;

  /** Closing: requests are still served, with `Connection: close`. */
  get closing(): boolean {
    return this.#state === 'closing';
  }

  /** Closed: `close()` has resolved, requests get 503. */
  get closed(): boolean {
    return this.#state === 'closed';
  }

  /** Keeps `work` in the set until it settles; its rejection is the caller's to handle. */
  track(work: Promise<unknown>): void {
    this.#inFlight.add(work);
    const done = (): void => {
      this.#inFlight.delete(work);
    };
    work.then(done, done);
  }

  /**
   * Waits for what is in flight, including what arrives meanwhile, but never longer than `boundMs`; then calls
   * `release` once. Every call returns the same promise.
   */
  close(boundMs: number, release: () => void): Promise<void> {
    this.#closing ??= this.#drain(boundMs).finally(() => {
      this.#state = 'closed';
      release();
    });
    return this.#closing;
  }

  async #drain(boundMs: number): Promise<void> {
    this.#state = 'closing';
    const deadline = Date.now() + boundMs;
    while (this.#inFlight.size > 0) {
      const left = deadline - Date.now();
      if (left <= 0 || (await within(Promise.allSettled([...this.#inFlight]), left, { unref: true })) === EXPIRED) return;
    }
  }
}
