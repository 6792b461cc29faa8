import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { sha256Hex } from '../digest.js';
import { tokenSetOf } from '../events.js';
import { callObserver } from '../hooks.js';
import { type Instrumentation, NO_INSTRUMENTATION } from '../instrumentation.js';
import { storeLog } from '../log.js';
import type { Configuration } from '../options.js';
import { describeError, fingerprint } from '../redact.js';
import type { Upstream, UpstreamCall, UpstreamOutcome } from '../upstream.js';
import { openReply, sealReply } from './reply-cipher.js';
import { StoreSession } from './store-session.js';

/** A rotated-away refresh token was presented again, outside the replay rules. */
export interface ReuseSighting {
  readonly fingerprint: string;
  readonly rotatedAt: Date;
}

/** Where a refresh's reply came from: this request's own upstream call, a coalesced one in flight, or the store. */
export type ReplySource = 'upstream' | 'coalesced' | 'store';

export interface RefreshResult {
  readonly outcome: UpstreamOutcome;
  readonly source: ReplySource;
  readonly reuse?: ReuseSighting;
}

export interface RotationGuard {
  /** False when coalescing, replay and reuse detection are all off: refreshes then go straight upstream. */
  readonly enabled: boolean;
  /** Sends a refresh upstream, or answers it from a coalesced request or the replay window. */
  refresh(call: UpstreamCall, refreshToken: string): Promise<RefreshResult>;
  /** A token the upstream revoked is never replayed again, even within the window. */
  revoked(token: string): Promise<void>;
}

const LOCK_POLL_MS = 10;

/** The store's layout: replies and locks per request, everything else per token, all under SHA-256 fingerprints. */
const KEYS = {
  reply: (requestKey: string) => `reply:${requestKey}`,
  lock: (requestKey: string) => `lock:${requestKey}`,
  /** Present once the token must never be replayed again: revoked, or its successor in use. */
  sealed: (tokenId: string) => `sealed:${tokenId}`,
  /** When the token was rotated away, for reuse detection. */
  rotated: (tokenId: string) => `rotated:${tokenId}`,
  /** The fingerprint of the token this one replaced. */
  predecessor: (tokenId: string) => `pred:${tokenId}`,
};

/**
 * The refresh path: coalescing, the replay window and reuse detection, over the configured store.
 * Every upstream answer still reaches the caller unchanged; the store only ever decides whether to ask again.
 */
export function rotationGuard(config: Configuration, upstream: Upstream, instrumentation: Instrumentation = NO_INSTRUMENTATION): RotationGuard {
  const { rotation } = config;
  const inFlight = new Map<string, Promise<RefreshResult>>();
  const lockTtlMs = config.timeoutMs + 2 * rotation.storeTimeoutMs;
  const sharesLocks = rotation.coalesce && rotation.store.localOnly !== true;
  // With replay off, a shared store still keeps a reply for as long as a lock can be held: for the requests
  // of other processes that waited on it.
  const replyTtlMs = rotation.reuseGraceMs > 0 ? rotation.reuseGraceMs : lockTtlMs;
  const replays = rotation.reuseGraceMs > 0;
  const detectsReuse = rotation.reuseDetectionMs > 0;
  // Coalescing alone in one process needs nothing from the store.
  const usesStore = replays || detectsReuse || sharesLocks;

  const reportStoreFailure = (error: unknown): void => {
    instrumentation.storeError('store');
    storeLog('store failed, refreshing without it: %s', describeError(error, config.secrets));
    const { onStoreError } = config.hooks;
    if (onStoreError !== undefined) callObserver(config, 'onStoreError', () => onStoreError(error));
  };

  const session = (): StoreSession => new StoreSession(rotation.store, rotation.storeTimeoutMs, reportStoreFailure);

  async function guarded(call: UpstreamCall, refreshToken: string, requestKey: string): Promise<RefreshResult> {
    if (!usesStore) return { outcome: await upstream(call), source: 'upstream' };
    const store = session();
    const tokenId = sha256Hex(refreshToken);
    const [stored, sealed, rotatedAt, predecessor] = await store.getAll([
      replays ? KEYS.reply(requestKey) : undefined,
      replays || sharesLocks ? KEYS.sealed(tokenId) : undefined,
      detectsReuse ? KEYS.rotated(tokenId) : undefined,
      replays ? KEYS.predecessor(tokenId) : undefined,
    ]);
    // The successor is in use: from now on its predecessor is never replayed again.
    if (predecessor !== undefined) await store.setAll([[KEYS.sealed(predecessor), '1', rotation.reuseGraceMs]]);
    const replay = (value: string | undefined): RefreshResult | undefined => {
      const answer = sealed === undefined && value !== undefined ? openReply(value, refreshToken, requestKey) : undefined;
      return answer === undefined ? undefined : { outcome: answer, source: 'store' };
    };

    const fromStore = replay(stored);
    if (fromStore !== undefined) return fromStore;
    const reuse = rotatedAt === undefined ? undefined : { fingerprint: fingerprint(refreshToken), rotatedAt: new Date(Number(rotatedAt)) };

    const callUpstream = async (): Promise<RefreshResult> => {
      const outcome = await upstream(call);
      await remember(store, outcome, refreshToken, requestKey, tokenId);
      return reuse === undefined ? { outcome, source: 'upstream' } : { outcome, source: 'upstream', reuse };
    };
    // In one process, the in-flight map below already coalesces; only a shared store needs the lock.
    return sharesLocks ? withLock(store, requestKey, replay, callUpstream) : callUpstream();
  }

  /** After a 2xx rotation: the sealed reply, when it was rotated, and which token replaced which. */
  async function remember(store: StoreSession, outcome: UpstreamOutcome, refreshToken: string, requestKey: string, tokenId: string): Promise<void> {
    if (outcome.kind !== 'answered' || outcome.status < 200 || outcome.status > 299) return;
    const successor = tokenSetOf(outcome.json).refreshToken;
    if (successor === undefined || successor === refreshToken) return;
    await store.setAll([
      replays || sharesLocks ? [KEYS.reply(requestKey), sealReply(outcome, refreshToken, requestKey), replyTtlMs] : undefined,
      detectsReuse ? [KEYS.rotated(tokenId), String(Date.now()), rotation.reuseDetectionMs] : undefined,
      replays ? [KEYS.predecessor(sha256Hex(successor)), tokenId, rotation.reuseGraceMs] : undefined,
    ]);
  }

  /**
   * Across processes: one caller per request holds the store's lock and calls upstream; the others poll for the
   * reply it stores. Whoever takes the lock looks for a stored reply first: another instance may have finished
   * while this one waited, or just before it came.
   */
  async function withLock(
    store: StoreSession,
    requestKey: string,
    replay: (value: string | undefined) => RefreshResult | undefined,
    callUpstream: () => Promise<RefreshResult>,
  ): Promise<RefreshResult> {
    const replyKey = KEYS.reply(requestKey);
    const lockKey = KEYS.lock(requestKey);
    const owner = randomUUID();
    const waitUntil = Date.now() + lockTtlMs;
    let waited = false;
    for (;;) {
      const taken = await store.setIfAbsent(lockKey, owner, lockTtlMs);
      if (taken === undefined) return callUpstream();
      if (taken) {
        try {
          const secondLook = waited || replays ? replay(await store.get(replyKey)) : undefined;
          return secondLook ?? (await callUpstream());
        } finally {
          await store.deleteIfEquals(lockKey, owner);
        }
      }
      waited = true;
      await sleep(LOCK_POLL_MS);
      const whileWaiting = replay(await store.get(replyKey));
      if (whileWaiting !== undefined) return whileWaiting;
      if (store.failed || Date.now() > waitUntil) return callUpstream();
    }
  }

  const refresh = async (call: UpstreamCall, refreshToken: string): Promise<RefreshResult> => {
    const requestKey = requestKeyOf(call, refreshToken, config.client.id);
    if (!rotation.coalesce) return guarded(call, refreshToken, requestKey);
    const pending = inFlight.get(requestKey);
    if (pending !== undefined) {
      const shared = await pending;
      return { outcome: shared.outcome, source: 'coalesced' };
    }
    const leader = guarded(call, refreshToken, requestKey).finally(() => inFlight.delete(requestKey));
    inFlight.set(requestKey, leader);
    return leader;
  };

  const revoked = async (token: string): Promise<void> => {
    if (replays) await session().setAll([[KEYS.sealed(sha256Hex(token)), '1', rotation.reuseGraceMs]]);
  };

  const enabled = rotation.coalesce || rotation.reuseGraceMs > 0 || rotation.reuseDetectionMs > 0;
  return { enabled, refresh, revoked };
}

/** Two refreshes are the same request when token, client, scope, audience and resource all match. */
function requestKeyOf(call: UpstreamCall, refreshToken: string, clientId: string | undefined): string {
  const { form } = call;
  return sha256Hex(JSON.stringify([refreshToken, clientId ?? form.get('client_id') ?? '', form.get('scope') ?? '', form.getAll('audience'), form.getAll('resource')]));
}
