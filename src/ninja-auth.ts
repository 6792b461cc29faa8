import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import express, { type Request, type Response } from 'express';
import { refreshTokenPlanner } from './endpoints/refresh-token.js';
import { revocationNotConfigured, revokeTokenPlanner } from './endpoints/revoke-token.js';
import { tokenPlanner } from './endpoints/token.js';
import type { Plan, Planner } from './endpoints/plan.js';
import { Refusal, sendRefusal } from './errors.js';
import { type Exchange, hookCallsFor, tokenSetOf } from './events.js';
import { type HookRunner, hookRunner } from './hooks.js';
import type { Instrumentation, RequestTrace } from './instrumentation.js';
import { Lifecycle } from './lifecycle.js';
import { proxyLog } from './log.js';
import { type Configuration, parseOptions } from './options.js';
import { type RequestRecord, outcomeOf, refusalOutcome } from './record.js';
import { describeError } from './redact.js';
import { requestLine } from './request-log.js';
import { type RefreshResult, type RotationGuard, rotationGuard } from './rotation/guard.js';
import { observedUpstream } from './telemetry/observed-upstream.js';
import { telemetryInstrumentation } from './telemetry/telemetry.js';
import type { EndpointName, NinjaAuthOptions, NinjaAuthRouter } from './types.js';
import { createUpstream, type Upstream, type UpstreamCall, type UpstreamOutcome } from './upstream.js';
import { type SiteResolver, siteResolver } from './upstream-site.js';

/**
 * Builds the router. Options override the `NINJA_AUTH_*` environment variables; anything missing, malformed
 * or misspelled throws `NinjaAuthConfigError` here, not on the first request.
 */
export function ninjaAuth(options?: NinjaAuthOptions): NinjaAuthRouter {
  const config = parseOptions(options);
  const instrumentation = telemetryInstrumentation(config.telemetry);
  const upstream = observedUpstream(createUpstream(config), instrumentation);
  const lifecycle = new Lifecycle();
  const services: Services = {
    config,
    instrumentation,
    lifecycle,
    upstream: upstream.send,
    site: siteResolver(config, upstream),
    guard: rotationGuard(config, upstream.send, instrumentation),
    hooks: hookRunner(config, instrumentation),
  };
  const planners: ReadonlyArray<readonly [EndpointName, Planner]> = [
    ['token', tokenPlanner(config)],
    ['refresh_token', refreshTokenPlanner(config)],
    ['revoke_token', revokeTokenPlanner(config)],
  ];
  const endpoints = new Map(planners.map(([name, planner]) => [`${config.prefix}/${name}`, { name, planner }]));

  const router = express.Router() as NinjaAuthRouter;
  router.use((req, res, next) => {
    const path = req.path.length > 1 && req.path.endsWith('/') ? req.path.slice(0, -1) : req.path;
    const endpoint = endpoints.get(path);
    if (endpoint === undefined) {
      next();
      return;
    }
    if (lifecycle.closing) res.setHeader('connection', 'close');
    lifecycle.track(serve(services, endpoint.name, endpoint.planner, req, res));
  });
  router.close = () =>
    lifecycle.close(config.timeoutMs + config.hookTimeoutMs, () => {
      upstream.release();
      services.guard.dispose();
      if (config.rotation.ownStore) void config.rotation.store.shutdown?.();
    });
  return router;
}

interface Services {
  readonly config: Configuration;
  readonly instrumentation: Instrumentation;
  readonly lifecycle: Lifecycle;
  readonly upstream: Upstream;
  readonly site: SiteResolver;
  readonly guard: RotationGuard;
  readonly hooks: HookRunner;
}

const closedRefusal = (): Refusal =>
  new Refusal(503, 'temporarily_unavailable', 'the token proxy is shutting down', { 'retry-after': '1' });

/** One request, from the router taking it until its hooks have settled: the promise `close()` waits for. */
async function serve(services: Services, name: EndpointName, planner: Planner, req: Request, res: Response): Promise<void> {
  const { config } = services;
  const startedAt = performance.now();
  const requestId = randomUUID();
  const trace = services.instrumentation.requestStarted(name);
  const secrets: string[] = [...config.secrets];
  let exchange: Exchange | undefined;
  try {
    if (services.lifecycle.closed) throw closedRefusal();
    if (req.method !== 'POST') throw new Refusal(405, 'invalid_request', 'use POST', { allow: 'POST' });
    const plan = await planner(req, secrets);
    exchange = { ...plan.details, endpoint: name, requestId, at: new Date(), startedAt };
    // Discovery runs under the request's span too, so its metadata GETs nest there.
    const found = trace.within(services.site);
    const site = found instanceof Promise ? await found : found;
    const url = plan.target === 'token' ? site.tokenUrl : site.revokeUrl;
    if (url === undefined) throw revocationNotConfigured();
    const authenticating = site.authenticate(url, plan.form);
    const authenticated = authenticating instanceof Promise ? await authenticating : authenticating;
    // A per-request credential (a client assertion) is made anew should the transport have to send the request again.
    const call = authenticated.form.has('client_assertion')
      ? { ...authenticated, endpoint: name, renew: () => site.authenticate(url, plan.form) }
      : { ...authenticated, endpoint: name };
    const result = await trace.within(() => forward(services, call, plan));
    await answered(services, answeredRecord(exchange, result, performance.now() - startedAt, secrets, call), trace, req, res);
    // The store learns the answer after the caller has it; close() waits for this too. The answer is out and counted:
    // a failure here is this process's to log, never the caller's.
    if (result.settled !== undefined) {
      await result.settled.catch((error: unknown) => {
        proxyLog('%s %s storing the answer failed: %s', name, requestId.slice(0, 8), describeError(error, secrets));
      });
    }
  } catch (error) {
    const refusal = error instanceof Refusal ? error : new Refusal(500, 'server_error', 'the token proxy failed unexpectedly');
    if (!(error instanceof Refusal)) {
      proxyLog('%s %s unexpected failure: %s', name, requestId.slice(0, 8), describeError(error, secrets));
    }
    if (res.headersSent) {
      res.destroy();
    } else {
      sendRefusal(res, refusal);
    }
    const record = refusedRecord(name, requestId, exchange, refusal, performance.now() - startedAt, secrets);
    if (proxyLog.enabled) proxyLog('%s %d %s %sms id=%s', name, refusal.status, refusal.error, record.durationMs.toFixed(1), requestId.slice(0, 8));
    trace.end(record);
  }
}

/** Hooks (before or after the answer, as configured), the answer, the log line and the span: each reads the record. */
async function answered(services: Services, record: RequestRecord, trace: RequestTrace, req: Request, res: Response): Promise<void> {
  const { config, hooks } = services;
  const calls = hookCallsFor(config.hooks, record);
  if (config.awaitHooks && calls.length > 0) await hooks.runBefore(calls, req, record.secrets);
  answer(res, record.upstream!);
  if (proxyLog.enabled) proxyLog(requestLine(record));
  trace.end(record);
  if (!config.awaitHooks && calls.length > 0) await hooks.runAfter(calls, req, res, record.secrets);
}

/** Refreshes go through the rotation guard; everything else straight upstream. */
async function forward({ upstream, guard }: Services, call: UpstreamCall, plan: Plan): Promise<RefreshResult> {
  const { presentedRefreshToken, revokedToken } = plan.details;
  if (presentedRefreshToken !== undefined && guard.enabled) return guard.refresh(call, presentedRefreshToken);
  const outcome = await upstream(call);
  if (revokedToken !== undefined && outcome.kind === 'answered' && outcome.status >= 200 && outcome.status < 300) {
    await guard.revoked(revokedToken);
  }
  return { outcome, source: 'upstream' };
}

function answer(res: Response, outcome: UpstreamOutcome): void {
  if (outcome.kind === 'failed') {
    sendRefusal(res, outcome.refusal);
    return;
  }
  res.writeHead(outcome.status, { ...outcome.headers, 'content-length': outcome.body.length });
  res.end(outcome.body);
}

function answeredRecord(exchange: Exchange, result: RefreshResult, durationMs: number, secrets: readonly string[], call: UpstreamCall): RequestRecord {
  const { outcome, source, reuse } = result;
  return {
    endpoint: exchange.endpoint,
    requestId: exchange.requestId,
    durationMs,
    status: outcome.kind === 'answered' ? outcome.status : outcome.refusal.status,
    outcome: outcomeOf(exchange, outcome, source, reuse),
    isRefresh: exchange.presentedRefreshToken !== undefined,
    exchange,
    upstream: outcome,
    upstreamUrl: call.url,
    refusal: undefined,
    source,
    reuse,
    secrets: () => [...secrets, ...callSecrets(call), ...answerSecrets(outcome)],
  };
}

function refusedRecord(endpoint: EndpointName, requestId: string, exchange: Exchange | undefined, refusal: Refusal, durationMs: number, secrets: readonly string[]): RequestRecord {
  return {
    endpoint,
    requestId,
    durationMs,
    status: refusal.status,
    outcome: refusalOutcome(refusal),
    isRefresh: false,
    exchange,
    upstream: undefined,
    upstreamUrl: undefined,
    refusal,
    source: undefined,
    reuse: undefined,
    secrets: () => secrets,
  };
}

/** What client authentication put on the call: a signed assertion or a Basic header. */
function callSecrets(call: UpstreamCall): string[] {
  const found: string[] = [];
  const assertion = call.form.get('client_assertion');
  if (assertion !== null) found.push(assertion);
  if (call.authorization !== undefined) found.push(call.authorization, call.authorization.replace(/^Basic /, ''));
  return found;
}

/** The tokens an upstream answer handed out. */
function answerSecrets(outcome: UpstreamOutcome): string[] {
  if (outcome.kind !== 'answered') return [];
  const { accessToken, refreshToken, idToken } = tokenSetOf(outcome.json);
  return [accessToken, refreshToken, idToken].filter((token): token is string => token !== undefined);
}
