import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { sha256Hex } from '../digest.js';
import { rotatedTo } from '../events.js';
import { callObserver } from '../hooks.js';
import { type Instrumentation, NO_INSTRUMENTATION } from '../instrumentation.js';
import { storeLog } from '../log.js';
import type { Configuration } from '../options.js';
import { describeError, fingerprint } from '../redact.js';
import type { Upstream, UpstreamAnswer, UpstreamCall, UpstreamOutcome } from '../upstream.js';
import { MemoryStore } from '../stores/memory-store.js';
import { type StoreKey, tagged } from '../stores/store-key.js';
import { openOutcome, openReply, sealOutcome, sealReplyValue } from './reply-cipher.js';
import { atEndOfTurn, startWaitingNow } from './end-of-turn.js';
import { type StoreFailureReport, StoreHealth } from './store-health.js';
import { type GuardStores, plainMemoryStore, probe, StoreSession, type StoreWrite, type TextWrite } from './store-session.js';

/** A rotated-away refresh token was presented again, outside the replay rules. */
export interface ReuseSighting {
  readonly fingerprint: string;
  readonly rotatedAt: Date;
  /** Whether the token that replaced it has been presented since. */
  readonly successorPresented: boolean;
}

/**
 * Where a refresh's reply came from: this request's own upstream call, a coalesced one in flight (in this process,
 * or another instance's that held the lock), or the store's replay window.
 */
export type ReplySource = 'upstream' | 'coalesced' | 'store';

export interface RefreshResult {
  readonly outcome: UpstreamOutcome;
  readonly source: ReplySource;
  readonly reuse?: ReuseSighting;
  /** The store work this refresh still does after its answer is known; the caller does not wait for it. */
  readonly settled?: Promise<void>;
}

export interface RotationGuard {
  /** False when coalescing, replay and reuse detection are all off: refreshes then go straight upstream. */
  readonly enabled: boolean;
  /** Sends a refresh upstream, or answers it from a coalesced request or the replay window. */
  refresh(call: UpstreamCall, refreshToken: string): Promise<RefreshResult>;
  /** A token the upstream revoked is never replayed again, even within the window. */
  revoked(token: string): Promise<void>;
  /** Stops the sweep timer of the guard's own memory; the configured store is the app's. */
  dispose(): void;
}

const LOCK_POLL_MS = 10;

/**
 * The store's layout: everything under SHA-256 fingerprints, and every key of one token under the hash tag of
 * its fingerprint (`{…}`), so that on a Redis Cluster the keys of one token's refresh share a hash slot, and a
 * memory store finds all it holds of a token with one lookup. As text, `reply:{<token>}:<request>` and so on.
 */
const KEYS = {
  /** A 2xx rotation, for the replay window. */
  reply: (tokenId: string, requestKey: string) => tagged(tokenId, `reply:{}:${requestKey}`),
  /** Held by the instance that is calling upstream for this request; its value names the holder. */
  lock: (tokenId: string, requestKey: string) => tagged(tokenId, `lock:{}:${requestKey}`),
  /** The holder's answer, whatever its status, for those who waited on its lock: only they know the key. */
  answer: (tokenId: string, requestKey: string, holder: string) => tagged(tokenId, `answer:{}:${requestKey}:${holder}`),
  /** Present once the token must never be replayed again: revoked, or its successor in use. */
  sealed: (tokenId: string) => tagged(tokenId, 'sealed:{}'),
  /** When the token was rotated away, for reuse detection. */
  rotated: (tokenId: string) => tagged(tokenId, 'rotated:{}'),
  /** Present once the token that replaced this one has been presented. */
  succeeded: (tokenId: string) => tagged(tokenId, 'succeeded:{}'),
  /** The fingerprint of the token this one replaced. */
  predecessor: (tokenId: string) => tagged(tokenId, 'pred:{}'),
};

/**
 * The refresh path: coalescing, the replay window and reuse detection, over the configured store.
 * Every upstream answer still reaches the caller unchanged; the store only ever decides whether to ask again.
 */
export function rotationGuard(
  config: Configuration,
  upstream: Upstream,
  instrumentation: Instrumentation = NO_INSTRUMENTATION,
  now: () => number = () => Date.now(),
): RotationGuard {
  const { rotation } = config;
  const inFlight = new Map<string, Promise<RefreshResult>>();
  const lockTtlMs = config.timeoutMs + 2 * rotation.storeTimeoutMs;
  const sharesLocks = rotation.coalesce && rotation.store.localOnly !== true;
  const replays = rotation.reuseGraceMs > 0;
  const detectsReuse = rotation.reuseDetectionMs > 0;
  // Coalescing alone in one process needs nothing from the store.
  const usesStore = replays || detectsReuse || sharesLocks;
  // Which token replaced which: for the window (sealing) and, as long as fingerprints are kept, for reuse reports.
  const predecessorTtlMs = Math.max(rotation.reuseGraceMs, rotation.reuseDetectionMs);

  /** The one place a store failure is reported: the log, and `onStoreError` once per failure episode. */
  const reportStoreFailure: StoreFailureReport = (operation, error, opensEpisode) => {
    instrumentation.storeError(operation);
    const what = describeError(error, config.secrets);
    if (!opensEpisode) {
      storeLog('store still failing (%s): %s', operation, what);
      return;
    }
    storeLog('store failed (%s), guarding from this process\'s memory until it answers again: %s', operation, what);
    const { onStoreError } = config.hooks;
    if (onStoreError !== undefined) callObserver(config, 'onStoreError', () => onStoreError(error));
  };

  const stores: GuardStores = {
    primary: rotation.store,
    local: rotation.store.localOnly === true ? undefined : new MemoryStore({ now }),
    memory: plainMemoryStore(rotation.store),
    health: new StoreHealth(reportStoreFailure, now),
    timeoutMs: rotation.storeTimeoutMs,
  };
  const session = (): StoreSession => {
    if (stores.health.probeDue()) probe(stores, () => storeLog('store answering again, shared again'));
    return new StoreSession(stores);
  };

  /**
   * A refresh over the store. The caller waits for one batch (one round trip to a network store) before the
   * upstream call: the lock and every read at once. What the store needs to know afterwards (the reply, which token
   * replaced which, the lock's release) goes out once the answer is known (for the memory store, at the end of
   * that turn of the event loop) and is not waited for: it is the result's `settled`, which the router awaits
   * after the reply has gone out (and `close()` with it). Until then a repeat of the request in this process
   * coalesces; the memory store's writes are done before any later refresh reads it instead.
   */
  async function guarded(call: UpstreamCall, refreshToken: string, requestKey: string): Promise<RefreshResult> {
    if (!usesStore) return { outcome: await upstream(call), source: 'upstream' };
    const store = session();
    const tokenId = sha256Hex(refreshToken);
    const request: GuardedRequest = { call, refreshToken, requestKey, tokenId, store, owner: sharesLocks ? randomUUID() : '' };
    const lockKey = KEYS.lock(tokenId, requestKey);
    const begun = store.begin(sharesLocks ? [lockKey, request.owner, lockTtlMs] : undefined, [
      replays ? KEYS.reply(tokenId, requestKey) : undefined,
      replays || sharesLocks ? KEYS.sealed(tokenId) : undefined,
      detectsReuse ? KEYS.rotated(tokenId) : undefined,
      detectsReuse ? KEYS.succeeded(tokenId) : undefined,
      replays || detectsReuse ? KEYS.predecessor(tokenId) : undefined,
    ]);
    const { lock, values } = begun instanceof Promise ? await begun : begun;
    const [stored, sealed, rotatedAt, succeeded, predecessor] = values;
    /** The store work still under way; a store that answers at once (the memory store) leaves none. */
    const afterwards: Array<Promise<void> | undefined> = [];
    // The successor is in use: from now on its predecessor is never replayed again, and reuse of it says so.
    if (predecessor !== undefined) {
      afterwards.push(store.setAll([
        replays ? [KEYS.sealed(predecessor), '1', rotation.reuseGraceMs] : undefined,
        detectsReuse ? [KEYS.succeeded(predecessor), '1', rotation.reuseDetectionMs] : undefined,
      ]));
    }
    const replay = (value: string | undefined): RefreshResult | undefined => {
      const answer = sealed === undefined && value !== undefined ? openReply(value, refreshToken, requestKey) : undefined;
      return answer === undefined ? undefined : { outcome: answer, source: 'store' };
    };

    const fromStore = replay(stored);
    if (fromStore !== undefined) {
      if (lock === true) afterwards.push(store.release(lockKey, request.owner, undefined));
      return settling(fromStore, afterwards);
    }
    const reuse = rotatedAt === undefined
      ? undefined
      : { fingerprint: fingerprint(refreshToken), rotatedAt: new Date(Number(rotatedAt)), successorPresented: succeeded !== undefined };
    // In one process, the in-flight map below already coalesces; only a shared store needs the lock, and a
    // request that could not reach it goes on under the local guard.
    if (lock === true || lock === undefined) return settling(await callUpstream(request, reuse, lock === true), afterwards);
    return settling(await waitForHolder(request, lock, replay, reuse), afterwards);
  }

  /**
   * Calls upstream; what the store must learn of the answer is `settled`. A shared store's writes are sent now,
   * before the reply leaves: another instance that the caller turns to next must find them there. The memory
   * store, one process's, is written at the end of this turn of the event loop instead, after the reply, with
   * every other request's of that turn — or as soon as another refresh of this process is about to read it,
   * whichever comes first.
   */
  async function callUpstream(request: GuardedRequest, reuse: ReuseSighting | undefined, holdsLock: boolean): Promise<RefreshResult> {
    const outcome = await upstream(request.call);
    const settled = stores.memory === undefined ? remember(request, outcome, holdsLock) : atEndOfTurn(() => remember(request, outcome, holdsLock));
    const result: RefreshResult = reuse === undefined ? { outcome, source: 'upstream' } : { outcome, source: 'upstream', reuse };
    if (settled === undefined) return result;
    // The router hears of a failure when it awaits this, after the reply: it may fail before then.
    settled.catch(() => undefined);
    return { ...result, settled };
  }

  /**
   * After the answer: a 2xx rotation's sealed reply and when the token was rotated; then, holding the lock, the
   * answer for those who waited when it is not a stored reply, and the lock's release — one batch, in this order, so
   * a waiter never finds the lock free before the reply is there. Which token replaced which goes under the
   * successor's hash tag, so in a batch of its own, at the same time.
   */
  function remember(request: GuardedRequest, outcome: UpstreamOutcome, holdsLock: boolean): Promise<void> | undefined {
    const { store, refreshToken, requestKey, tokenId, owner } = request;
    const successor = rotatedTo(outcome, refreshToken);
    const writes: Array<StoreWrite | undefined> = successor === undefined
      ? []
      : [
        replays ? [KEYS.reply(tokenId, requestKey), sealReplyValue(outcome as UpstreamAnswer, refreshToken, requestKey), rotation.reuseGraceMs] : undefined,
        detectsReuse ? [KEYS.rotated(tokenId), String(now()), rotation.reuseDetectionMs] : undefined,
      ];
    let saving: Promise<void> | undefined;
    if (holdsLock) {
      const publish: TextWrite | undefined = successor !== undefined && replays
        ? undefined
        : [KEYS.answer(tokenId, requestKey, owner), sealOutcome(outcome, refreshToken, requestKey), lockTtlMs];
      saving = store.release(KEYS.lock(tokenId, requestKey), owner, publish, writes);
    } else {
      saving = store.setAll(writes);
    }
    if (successor === undefined || !(replays || detectsReuse)) return saving;
    return allOf([saving, store.setAll([[KEYS.predecessor(sha256Hex(successor)), tokenId, predecessorTtlMs]])]);
  }

  /**
   * Another instance holds the lock for this request: wait for its answer. A 2xx rotation is among the stored
   * replies (when replay is on); any other answer, and every answer when replay is off, the holder leaves under a
   * key named after itself, which only those who saw it hold the lock know: an answer is handed to the callers of
   * the request in flight, never replayed later. Whoever takes the lock next looks for a stored reply first.
   */
  async function waitForHolder(
    request: GuardedRequest,
    firstHolder: string,
    replay: (value: string | undefined) => RefreshResult | undefined,
    reuse: ReuseSighting | undefined,
  ): Promise<RefreshResult> {
    const { store, tokenId, requestKey, refreshToken, owner } = request;
    const replyKey = replays ? KEYS.reply(tokenId, requestKey) : undefined;
    const lockKey = KEYS.lock(tokenId, requestKey);
    const answerOf = (holder: string | undefined): StoreKey | undefined => (holder === undefined ? undefined : KEYS.answer(tokenId, requestKey, holder));
    const handed = (value: string | undefined): RefreshResult | undefined => {
      const outcome = value === undefined ? undefined : openOutcome(value, refreshToken, requestKey);
      return outcome === undefined ? undefined : { outcome, source: 'coalesced' };
    };
    const waitUntil = now() + lockTtlMs;
    /** The holder this request last saw with the lock. */
    let holder: string | undefined = firstHolder === '' ? undefined : firstHolder;
    for (;;) {
      if (now() > waitUntil) return callUpstream(request, reuse, false);
      await sleep(LOCK_POLL_MS);
      const [stored, held, lockValue] = await store.getAll([replyKey, answerOf(holder), lockKey]);
      const whileWaiting = replay(stored) ?? handed(held);
      if (whileWaiting !== undefined) return whileWaiting;
      if (lockValue !== undefined) {
        holder = lockValue;
        continue;
      }
      const taken = await store.acquire(lockKey, owner, lockTtlMs);
      if (taken === undefined) return callUpstream(request, reuse, false);
      if (taken !== true) {
        if (taken !== '') holder = taken;
        continue;
      }
      const [secondStored, secondHeld] = await store.getAll([replyKey, answerOf(holder)]);
      const secondLook = replay(secondStored) ?? handed(secondHeld);
      if (secondLook === undefined) return callUpstream(request, reuse, true);
      await store.release(lockKey, owner, undefined);
      return secondLook;
    }
  }

  const refresh = (call: UpstreamCall, refreshToken: string): Promise<RefreshResult> => {
    if (stores.memory !== undefined) startWaitingNow();
    const requestKey = requestKeyOf(call, refreshToken, config.client.id);
    if (!rotation.coalesce) return guarded(call, refreshToken, requestKey);
    const pending = inFlight.get(requestKey);
    if (pending !== undefined) return pending.then(({ outcome }) => ({ outcome, source: 'coalesced' }));
    const leader = leading(call, refreshToken, requestKey);
    inFlight.set(requestKey, leader);
    return leader;
  };

  /**
   * The request that the same requests coalesce on while it is in flight. Until a shared store has a 2xx rotation
   * that it may replay, a request that comes meanwhile gets it from here, as it would from the store; any other
   * answer is shared only while it is in flight, as the contract says. The memory store has it before the next
   * refresh looks (see {@link refresh}).
   */
  async function leading(call: UpstreamCall, refreshToken: string, requestKey: string): Promise<RefreshResult> {
    let result: RefreshResult;
    try {
      result = await guarded(call, refreshToken, requestKey);
    } catch (error) {
      inFlight.delete(requestKey);
      throw error;
    }
    const done = (): void => void inFlight.delete(requestKey);
    if (replays && result.settled !== undefined && stores.memory === undefined && rotatedTo(result.outcome, refreshToken) !== undefined) {
      result.settled.then(done, done);
    } else {
      done();
    }
    return result;
  }

  const revoked = async (token: string): Promise<void> => {
    if (replays) await session().setAll([[KEYS.sealed(sha256Hex(token)), '1', rotation.reuseGraceMs]]);
  };

  const enabled = rotation.coalesce || rotation.reuseGraceMs > 0 || rotation.reuseDetectionMs > 0;
  return { enabled, refresh, revoked, dispose: () => stores.local?.shutdown() };
}

/** One refresh as the guard handles it. */
interface GuardedRequest {
  readonly call: UpstreamCall;
  readonly refreshToken: string;
  readonly requestKey: string;
  readonly tokenId: string;
  readonly store: StoreSession;
  /** This request's lock value: who holds the lock while it calls upstream. */
  readonly owner: string;
}

/** The result, with the store work still under way after it (its own and whatever the result already had). */
function settling(result: RefreshResult, afterwards: ReadonlyArray<Promise<void> | undefined>): RefreshResult {
  const settled = allOf([...afterwards, result.settled]);
  return settled === undefined || settled === result.settled ? result : { ...result, settled };
}

/** Store work still under way, as one promise; `undefined` when none is (a store that answered at once). */
function allOf(works: ReadonlyArray<Promise<void> | undefined>): Promise<void> | undefined {
  const pending = works.filter((work) => work !== undefined);
  if (pending.length <= 1) return pending[0];
  return Promise.all(pending).then(() => undefined);
}

/** Two refreshes are the same request when token, client, scope, audience and resource all match. */
function requestKeyOf(call: UpstreamCall, refreshToken: string, clientId: string | undefined): string {
  const { form } = call;
  return sha256Hex(JSON.stringify([refreshToken, clientId ?? form.get('client_id') ?? '', form.get('scope') ?? '', form.getAll('audience'), form.getAll('resource')]));
}
