import type { Request } from 'express';
import type { Exchange } from '../events.js';
import type { Configuration } from '../options.js';
import type { Params } from '../request-params.js';

/**
 * What an endpoint decided to send upstream, and what it learned of the request on the way. The client
 * credentials are added later, once the upstream's endpoints are known.
 */
export interface Plan {
  readonly target: 'token' | 'revocation';
  readonly form: URLSearchParams;
  readonly details: Pick<Exchange, 'grantType' | 'username' | 'presentedRefreshToken' | 'revokedToken' | 'tokenTypeHint'>;
}

/**
 * Reads and checks one request; throws a `Refusal` for anything that must not reach the upstream. Every secret
 * it reads (a password, a token, a code) goes into `secrets` at once, so that whatever fails later is redacted.
 */
export type Planner = (req: Request, secrets: string[]) => Promise<Plan>;

/** Parameters whose values are credentials: redacted wherever code we do not control might write them. */
const SECRET_PARAMS = [
  'password', 'refresh_token', 'token', 'code', 'code_verifier', 'client_secret', 'client_assertion',
  // Grants an app may allow through grantTypes: JWT bearer (RFC 7523), token exchange (RFC 8693), device flow (RFC 8628).
  'assertion', 'subject_token', 'actor_token', 'device_code',
];

/** Client authentication is the router's alone: what a caller sends of it never goes upstream. */
export const CLIENT_CREDENTIAL_PARAMS: ReadonlySet<string> = new Set(['client_secret', 'client_assertion', 'client_assertion_type']);

export function collectSecrets(params: Params, secrets: string[]): void {
  for (const name of SECRET_PARAMS) {
    const value = params[name];
    if (value !== undefined && value !== '') secrets.push(value);
  }
}

/** The caller's parameters for a token request, with `grant_type` first and `extraParams` where the caller sent none. */
export function tokenRequestForm(grantType: string, params: Params, config: Configuration): URLSearchParams {
  const form = new URLSearchParams([['grant_type', grantType]]);
  for (const name in params) {
    if (name !== 'grant_type' && !CLIENT_CREDENTIAL_PARAMS.has(name)) form.append(name, params[name]!);
  }
  for (const [name, value] of config.extraParams) {
    if (!(name in params)) form.append(name, value);
  }
  return form;
}

export function refreshPlan(config: Configuration, refreshToken: string, params: Params): Plan {
  const form = tokenRequestForm('refresh_token', params, config);
  form.set('refresh_token', refreshToken);
  return { target: 'token', form, details: { grantType: 'refresh_token', presentedRefreshToken: refreshToken } };
}
