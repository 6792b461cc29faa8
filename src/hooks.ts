import type { Request, Response } from 'express';
import { EXPIRED, within } from './deadline.js';
import type { Instrumentation } from './instrumentation.js';
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

/** A hook to run and the frozen event it gets. */
export type HookCall = readonly [hook: EventHook, event: NinjaAuthEvent];

export function hookFor(hooks: Readonly<NinjaAuthHooks>, type: NinjaAuthEvent['type']): EventHook | undefined {
  return hooks[HOOK_OF_EVENT[type]] as EventHook | undefined;
}

/** Runs a request's hooks, before the response (`awaitHooks`) or after it; failures go nowhere but the observers. */
export interface HookRunner {
  /** Runs the hooks together and waits for them, at most `hookTimeoutMs` for all of them. */
  runBefore(calls: readonly HookCall[], req: Request, secrets: () => readonly string[]): Promise<void>;
  /** Runs the hooks once the response is finished (or the connection closed); settles when they have. */
  runAfter(calls: readonly HookCall[], req: Request, res: Response, secrets: () => readonly string[]): Promise<void>;
}

export function hookRunner(config: Configuration, instrumentation: Instrumentation): HookRunner {
  const reportHookError = (error: unknown, event: NinjaAuthEvent, secrets: () => readonly string[]): void => {
    const name = HOOK_OF_EVENT[event.type];
    instrumentation.hookError(name);
    hooksLog('%s failed for request %s: %s', name, event.requestId, describeError(error, secrets()));
    const { onHookError } = config.hooks;
    if (onHookError !== undefined) callObserver(config, 'onHookError', () => onHookError(error, event), secrets);
  };

  /** The hook's settling when it returned a promise; a throw or rejection is reported, never passed on. */
  const invoke = ([hook, event]: HookCall, req: Request, secrets: () => readonly string[]): Promise<void> | undefined => {
    try {
      const returned: unknown = hook(event, req);
      if (isThenable(returned)) return Promise.resolve(returned).then(() => undefined, (error: unknown) => reportHookError(error, event, secrets));
    } catch (error) {
      reportHookError(error, event, secrets);
    }
    return undefined;
  };

  return {
    async runBefore(calls, req, secrets) {
      const running = calls.map((call) => [call, invoke(call, req, secrets)] as const);
      const pending = running.filter(([, settling]) => settling !== undefined);
      if (pending.length === 0) return;
      const unsettled = new Set(pending.map(([call]) => call));
      const all = Promise.all(pending.map(([call, settling]) => settling!.then(() => unsettled.delete(call))));
      if ((await within(all, config.hookTimeoutMs)) !== EXPIRED) return;
      for (const [, event] of unsettled) {
        const name = HOOK_OF_EVENT[event.type];
        reportHookError(new Error(`ninja-auth: hook ${name} still running after ${config.hookTimeoutMs} ms`), event, secrets);
      }
    },

    runAfter(calls, req, res, secrets) {
      return new Promise<void>((resolve) => {
        afterResponse(res, () => {
          const settling = calls.map((call) => invoke(call, req, secrets)).filter((s) => s !== undefined);
          if (settling.length === 0) resolve();
          else void Promise.all(settling).then(() => resolve());
        });
      });
    },
  };
}

/** Runs `task` once the response is finished, or once the connection closed before it could be. */
function afterResponse(res: Response, task: () => void): void {
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

/**
 * Calls an observer whose own failure must go nowhere but the log: a throw, or a rejection of whatever
 * promise-like value it returns.
 */
export function callObserver(config: Configuration, name: string, call: () => unknown, secrets: () => readonly string[] = () => config.secrets): void {
  const reportFailure = (failure: unknown): void => {
    hooksLog('%s failed: %s', name, describeError(failure, secrets()));
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
