import { Refusal, badRequest } from '../errors.js';
import { bearerToken, presentedToken, readParams } from '../request-params.js';
import type { Configuration } from '../options.js';
import { collectSecrets, type Planner, refreshPlan } from './plan.js';

/** `POST {prefix}/refresh_token`: the refresh token from `Authorization: Bearer` (the ninja form) or the body. */
export function refreshTokenPlanner(config: Configuration): Planner {
  return async (req, secrets) => {
    if (!config.grantTypes.has('refresh_token')) {
      throw new Refusal(400, 'unsupported_grant_type', 'grant type "refresh_token" is not accepted here');
    }
    const fromHeader = bearerToken(req);
    if (fromHeader !== undefined) secrets.push(fromHeader);
    const params = await readParams(req, config.maxBodyBytes, config.timeoutMs);
    collectSecrets(params, secrets);
    const grantType = params['grant_type'];
    if (grantType !== undefined && grantType !== 'refresh_token') {
      throw badRequest('parameter "grant_type" must be "refresh_token" on this endpoint, or left out');
    }
    return refreshPlan(config, presentedToken(fromHeader, params, 'refresh_token', 'refresh token'), params);
  };
}
