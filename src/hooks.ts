import type { Request, Response } from 'express';
import { hooksLog } from './log.js';
import type { Configuration } from './options.js';
import { describeError } from './redact.js';
import type { NinjaAuthEvent, NinjaAuthHooks } from './types.js';

const HOOK_OF_EVENT = {
  token_issued: 'onTokenIssued',
  rotation: 'onRotation',
  revoke: 'onRevoke',
  upstream_error: 'onUpstreamError',
  reuse_detected: 'onReuseDetected',
} as const satisfies Record<NinjaAuthEvent['type'], keyof NinjaAuthHooks>;

export type EventHook = (event: NinjaAuthEvent, req: Request) => void | Promise<void>;

export function hookFor(hooks: Readonly<NinjaAuthHooks>, type: NinjaAuthEvent['type']): EventHook | undefined {
  return hooks[HOOK_OF_EVENT[type]] as EventHook | undefined;
}

/**
 * Runs the event's hook; a throw or rejection goes to `onHookError` and the log, never further. Returns the
 * hook's settling when it returned a promise, so that `awaitHooks` can wait for it.
 */
export function invokeHook(config: Configuration, hook: EventHook, event: NinjaAuthEvent, req: Request): Promise<void> | undefined {
  try {
    const returned: unknown = hook(event, req);
    if (isThenable(returned)) return Promise.resolve(returned).then(() => undefined, (error: unknown) => reportHookError(config, error, event));
  } catch (error) {
    reportHookError(config, error, event);
  }
  return undefined;
}

/** With `awaitHooks`: waits for the hook, but never longer than `hookTimeoutMs`. */
export async function awaitHook(config: Configuration, hook: EventHook, event: NinjaAuthEvent, req: Request): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<'expired'>((resolve) => {
    timer = setTimeout(() => resolve('expired'), config.hookTimeoutMs);
  });
  const result = await Promise.race([invokeHook(config, hook, event, req), expired]);
  clearTimeout(timer);
  if (result === 'expired') {
    const name = HOOK_OF_EVENT[event.type];
    reportHookError(config, new Error(`ninja-auth: hook ${name} still running after ${config.hookTimeoutMs} ms`), event);
  }
}

/** Runs `task` once the response is finished, or once the connection closed before it could be. */
export function afterResponse(res: Response, task: () => void): void {
  let done = false;
  const once = (): void => {
    if (done) return;
    done = true;
    res.off('finish', once);
    res.off('close', once);
    task();
  };
  if (res.writableFinished || res.destroyed) {
    setImmediate(once);
    return;
  }
  res.on('finish', once);
  res.on('close', once);
}

function reportHookError(config: Configuration, error: unknown, event: NinjaAuthEvent): void {
  const name = HOOK_OF_EVENT[event.type];
  hooksLog('%s failed for request %s: %s', name, event.requestId, describeError(error, [...config.secrets, ...tokensOf(event)]));
  const { onHookError } = config.hooks;
  if (onHookError !== undefined) callObserver(config, 'onHookError', () => onHookError(error, event));
}

/**
 * Calls an observer whose own failure must go nowhere but the log: a throw, or a rejection of whatever
 * promise-like value it returns.
 */
export function callObserver(config: Configuration, name: string, call: () => unknown): void {
  const reportFailure = (failure: unknown): void => {
    hooksLog('%s failed: %s', name, describeError(failure, config.secrets));
  };
  try {
    const returned = call();
    if (isThenable(returned)) returned.then(undefined, reportFailure);
  } catch (failure) {
    reportFailure(failure);
  }
}

export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

function tokensOf(event: NinjaAuthEvent): string[] {
  switch (event.type) {
    case 'rotation':
      return [event.previousRefreshToken, ...Object.values(event.tokens).filter((t): t is string => typeof t === 'string')];
    case 'token_issued':
      return Object.values(event.tokens).filter((t): t is string => typeof t === 'string');
    case 'revoke':
      return [event.token];
    default:
      return [];
  }
}
