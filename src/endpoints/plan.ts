import type { Request } from 'express';
import type { ClientAuthenticator } from '../client-auth.js';
import type { Exchange } from '../events.js';
import type { Configuration } from '../options.js';
import type { Params } from '../request-params.js';
import type { UpstreamCall } from '../upstream.js';

/** What an endpoint decided to send upstream, and what it learned of the request on the way. */
export interface Plan {
  readonly call: UpstreamCall;
  readonly details: Pick<Exchange, 'grantType' | 'username' | 'presentedRefreshToken' | 'revokedToken' | 'tokenTypeHint'>;
}

/** Reads and checks one request; throws a `Refusal` for anything that must not reach the upstream. */
export type Planner = (req: Request) => Promise<Plan>;

export interface EndpointContext {
  readonly config: Configuration;
  readonly authenticate: ClientAuthenticator;
}

/** The caller's parameters for a token request, with `grant_type` first and `extraParams` where the caller sent none. */
export function tokenRequestForm(grantType: string, params: Params, config: Configuration): URLSearchParams {
  const form = new URLSearchParams([['grant_type', grantType]]);
  for (const name in params) {
    if (name !== 'grant_type') form.append(name, params[name]!);
  }
  for (const [name, value] of config.extraParams) {
    if (!(name in params)) form.append(name, value);
  }
  return form;
}

export function refreshPlan(context: EndpointContext, refreshToken: string, params: Params): Plan {
  const form = tokenRequestForm('refresh_token', params, context.config);
  form.set('refresh_token', refreshToken);
  return {
    call: context.authenticate(context.config.tokenUrl, form),
    details: { grantType: 'refresh_token', presentedRefreshToken: refreshToken },
  };
}
