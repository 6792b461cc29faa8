import { Refusal } from '../errors.js';
import { bearerToken, presentedToken, readParams } from '../request-params.js';
import type { Configuration } from '../options.js';
import { collectSecrets, type Planner } from './plan.js';

export const revocationNotConfigured = (): Refusal =>
  new Refusal(501, 'unsupported_operation', 'token revocation is not configured on this server');

/** `POST {prefix}/revoke_token`: RFC 7009, the token from `Authorization: Bearer` or the body. */
export function revokeTokenPlanner(config: Configuration): Planner {
  return async (req, secrets) => {
    const { revokeUrl, issuer } = config.upstream;
    if (revokeUrl === undefined && issuer === undefined) throw revocationNotConfigured();
    const fromHeader = bearerToken(req);
    if (fromHeader !== undefined) secrets.push(fromHeader);
    const params = await readParams(req, config.maxBodyBytes, config.timeoutMs);
    collectSecrets(params, secrets);
    const token = presentedToken(fromHeader, params, 'token', 'token');
    const form = new URLSearchParams([['token', token]]);
    const hint = params['token_type_hint'];
    if (hint !== undefined && hint !== '') form.set('token_type_hint', hint);
    if (params['client_id'] !== undefined) form.set('client_id', params['client_id']);
    return {
      target: 'revocation',
      form,
      details: hint === undefined || hint === '' ? { revokedToken: token } : { revokedToken: token, tokenTypeHint: hint },
    };
  };
}
