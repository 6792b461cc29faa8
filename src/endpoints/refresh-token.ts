import { Refusal, badRequest } from '../errors.js';
import { bearerToken, readParams } from '../request-params.js';
import type { Configuration } from '../options.js';
import { type Planner, refreshPlan } from './plan.js';

/** `POST {prefix}/refresh_token`: the refresh token from `Authorization: Bearer` (the ninja form) or the body. */
export function refreshTokenPlanner(config: Configuration): Planner {
  return async (req) => {
    if (!config.grantTypes.has('refresh_token')) {
      throw new Refusal(400, 'unsupported_grant_type', 'grant type "refresh_token" is not accepted here');
    }
    const fromHeader = bearerToken(req);
    const params = await readParams(req, config.maxBodyBytes);
    const grantType = params['grant_type'];
    if (grantType !== undefined && grantType !== 'refresh_token') {
      throw badRequest('parameter "grant_type" must be "refresh_token" on this endpoint, or left out');
    }
    const fromBody = params['refresh_token'];
    if (fromHeader !== undefined && fromBody !== undefined) {
      throw badRequest('send the refresh token in the Authorization header or in the body, not both');
    }
    const refreshToken = fromHeader ?? fromBody;
    if (refreshToken === undefined || refreshToken === '') {
      throw badRequest('a refresh token is required: Authorization: Bearer <refresh_token>, or the "refresh_token" parameter');
    }
    return refreshPlan(config, refreshToken, params);
  };
}
