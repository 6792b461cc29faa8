import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import express, { type Request, type Response, type Router } from 'express';
import { refreshTokenPlanner } from './endpoints/refresh-token.js';
import { revocationNotConfigured, revokeTokenPlanner } from './endpoints/revoke-token.js';
import { tokenPlanner } from './endpoints/token.js';
import type { Plan, Planner } from './endpoints/plan.js';
import { Refusal, sendRefusal } from './errors.js';
import { type Exchange, eventFor, eventTypeOf, reuseEventFor } from './events.js';
import { type EventHook, afterResponse, awaitHook, hookFor, invokeHook } from './hooks.js';
import { proxyLog } from './log.js';
import { type Configuration, parseOptions } from './options.js';
import { describeError } from './redact.js';
import { requestLine } from './request-log.js';
import { type RefreshResult, type ReuseSighting, type RotationGuard, rotationGuard } from './rotation/guard.js';
import type { EndpointName, NinjaAuthEvent, NinjaAuthOptions } from './types.js';
import { createUpstream, type Upstream, type UpstreamCall, type UpstreamOutcome } from './upstream.js';
import { type SiteResolver, siteResolver } from './upstream-site.js';

/**
 * Builds the router. Options override the `NINJA_AUTH_*` environment variables; anything missing, malformed
 * or misspelled throws `NinjaAuthConfigError` here, not on the first request.
 */
export function ninjaAuth(options?: NinjaAuthOptions): Router {
  const config = parseOptions(options);
  const upstream = createUpstream(config);
  const services: Services = { config, upstream: upstream.send, site: siteResolver(config, upstream), guard: rotationGuard(config, upstream.send) };
  const planners: ReadonlyArray<readonly [EndpointName, Planner]> = [
    ['token', tokenPlanner(config)],
    ['refresh_token', refreshTokenPlanner(config)],
    ['revoke_token', revokeTokenPlanner(config)],
  ];
  const endpoints = new Map(planners.map(([name, planner]) => [`${config.prefix}/${name}`, { name, planner }]));

  const router = express.Router();
  router.use((req, res, next) => {
    const path = req.path.length > 1 && req.path.endsWith('/') ? req.path.slice(0, -1) : req.path;
    const endpoint = endpoints.get(path);
    if (endpoint === undefined) {
      next();
      return;
    }
    void serve(services, endpoint.name, endpoint.planner, req, res);
  });
  return router;
}

interface Services {
  readonly config: Configuration;
  readonly upstream: Upstream;
  readonly site: SiteResolver;
  readonly guard: RotationGuard;
}

async function serve(services: Services, name: EndpointName, planner: Planner, req: Request, res: Response): Promise<void> {
  const { config } = services;
  const startedAt = performance.now();
  const requestId = randomUUID();
  let plan: Plan | undefined;
  try {
    if (req.method !== 'POST') throw new Refusal(405, 'invalid_request', 'use POST', { allow: 'POST' });
    plan = await planner(req);
    const exchange: Exchange = { ...plan.details, endpoint: name, requestId, at: new Date(), startedAt };
    const found = services.site();
    const site = found instanceof Promise ? await found : found;
    const url = plan.target === 'token' ? site.tokenUrl : site.revokeUrl;
    if (url === undefined) throw revocationNotConfigured();
    const { outcome, replayed, reuse } = await forward(services, site.authenticate(url, plan.form), plan);
    const durationMs = performance.now() - startedAt;
    const events = eventsFor(config, exchange, outcome, durationMs, replayed, reuse);
    if (config.awaitHooks) {
      for (const [hook, event] of events) await awaitHook(config, hook, event, req);
    }
    answer(res, outcome);
    if (!config.awaitHooks && events.length > 0) {
      afterResponse(res, () => {
        for (const [hook, event] of events) invokeHook(config, hook, event, req);
      });
    }
    if (proxyLog.enabled) proxyLog(requestLine(exchange, outcome, durationMs, replayed, reuse));
  } catch (error) {
    const refusal = error instanceof Refusal ? error : new Refusal(500, 'server_error', 'the token proxy failed unexpectedly');
    if (!(error instanceof Refusal)) {
      proxyLog('%s %s unexpected failure: %s', name, requestId.slice(0, 8), describeError(error, [...config.secrets, ...secretsOf(plan)]));
    }
    if (res.headersSent) {
      res.destroy();
    } else {
      sendRefusal(res, refusal);
    }
    if (proxyLog.enabled) proxyLog('%s %d %s %sms id=%s', name, refusal.status, refusal.error, (performance.now() - startedAt).toFixed(1), requestId.slice(0, 8));
  }
}

/** Refreshes go through the rotation guard; everything else straight upstream. */
async function forward({ upstream, guard }: Services, call: UpstreamCall, plan: Plan): Promise<RefreshResult> {
  const { presentedRefreshToken, revokedToken } = plan.details;
  if (presentedRefreshToken !== undefined && guard.enabled) return guard.refresh(call, presentedRefreshToken);
  const outcome = await upstream(call);
  if (revokedToken !== undefined && outcome.kind === 'answered' && outcome.status >= 200 && outcome.status < 300) {
    await guard.revoked(revokedToken);
  }
  return { outcome, replayed: false };
}

/** The hooks to run for this request, each with its frozen event: built only when a hook wants it. */
function eventsFor(
  config: Configuration,
  exchange: Exchange,
  outcome: UpstreamOutcome,
  durationMs: number,
  replayed: boolean,
  reuse: ReuseSighting | undefined,
): Array<[EventHook, NinjaAuthEvent]> {
  const events: Array<[EventHook, NinjaAuthEvent]> = [];
  const hook = hookFor(config.hooks, eventTypeOf(exchange, outcome));
  if (hook !== undefined) events.push([hook, eventFor(exchange, outcome, durationMs, replayed)]);
  const reuseHook = hookFor(config.hooks, 'reuse_detected');
  if (reuse !== undefined && reuseHook !== undefined) {
    const status = outcome.kind === 'answered' ? outcome.status : outcome.refusal.status;
    events.push([reuseHook, reuseEventFor(exchange, status, durationMs, reuse)]);
  }
  return events;
}

function answer(res: Response, outcome: UpstreamOutcome): void {
  if (outcome.kind === 'failed') {
    sendRefusal(res, outcome.refusal);
    return;
  }
  res.writeHead(outcome.status, { ...outcome.headers, 'content-length': outcome.body.length });
  res.end(outcome.body);
}

function secretsOf(plan: Plan | undefined): string[] {
  if (plan === undefined) return [];
  const { presentedRefreshToken, revokedToken } = plan.details;
  return [presentedRefreshToken, revokedToken, plan.form.get('password') ?? undefined].filter((s): s is string => s !== undefined);
}
