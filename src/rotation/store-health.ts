/** What the guard asked of the store when it failed: the `ninja_auth.store.operation` of a store error. */
export type StoreOperation = 'get' | 'set' | 'lock' | 'unlock';

/**
 * Where every store failure goes: the debug log, `onStoreError` (when `opensEpisode`), and any counter.
 * `opensEpisode` is true for the first failure after the store last answered.
 */
export type StoreFailureReport = (operation: StoreOperation, error: unknown, opensEpisode: boolean) => void;

/** The first probe of a failing store comes this long after the failure; each failed probe doubles the wait. */
export const FIRST_PROBE_MS = 500;
/** The longest wait between two probes. */
export const MAX_PROBE_MS = 5000;

/**
 * Whether the shared store is to be used, across all the requests of one router. A failure opens an episode:
 * until the store answers a probe again, requests skip it (and use the process's own memory) instead of each
 * waiting for it to fail. Probes come at most every {@link FIRST_PROBE_MS}, backing off to {@link MAX_PROBE_MS}.
 */
export class StoreHealth {
  #failingSince: number | undefined;
  #probeAt = 0;
  #backoffMs = FIRST_PROBE_MS;
  #probing = false;

  constructor(
    private readonly report: StoreFailureReport,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /** False while a failure episode lasts. */
  get usable(): boolean {
    return this.#failingSince === undefined;
  }

  failed(operation: StoreOperation, error: unknown): void {
    const opensEpisode = this.#failingSince === undefined;
    if (opensEpisode) {
      this.#failingSince = this.now();
      this.#backoffMs = FIRST_PROBE_MS;
      this.#probeAt = this.#failingSince + FIRST_PROBE_MS;
    }
    this.report(operation, error, opensEpisode);
  }

  /** True when a probe is due; the caller then probes and tells {@link probeAnswered} or {@link probeFailed}. One at a time. */
  probeDue(): boolean {
    if (this.#failingSince === undefined || this.#probing || this.now() < this.#probeAt) return false;
    this.#probing = true;
    return true;
  }

  /** The store answered: the episode is over, and the next request uses the store again. */
  probeAnswered(): void {
    this.#probing = false;
    this.#failingSince = undefined;
  }

  /** Still failing: the next probe waits twice as long, up to {@link MAX_PROBE_MS}. */
  probeFailed(error: unknown): void {
    this.#probing = false;
    if (this.#failingSince === undefined) return;
    this.#backoffMs = Math.min(this.#backoffMs * 2, MAX_PROBE_MS);
    this.#probeAt = this.now() + this.#backoffMs;
    this.report('get', error, false);
  }
}
