import { timingSafeEqual } from 'node:crypto';
import { sha256Bytes } from '../digest.js';
import type { Request } from 'express';
import { Refusal, badRequest } from '../errors.js';
import { bearerToken, readParams, type Params } from '../request-params.js';
import type { Configuration } from '../options.js';
import { collectSecrets, type Plan, type Planner, refreshPlan, tokenRequestForm } from './plan.js';

const REQUIRED_PARAMS: Readonly<Record<string, readonly string[]>> = {
  password: ['username', 'password'],
  authorization_code: ['code'],
  refresh_token: ['refresh_token'],
};

/** `POST {prefix}/token`: every grant, gated by `authKey` when one is set. */
export function tokenPlanner(config: Configuration): Planner {
  return async (req, secrets) => {
    checkAuthKey(req, config.authKeyDigest);
    const params = await readParams(req, config.maxBodyBytes, config.timeoutMs);
    collectSecrets(params, secrets);
    const grantType = grantTypeOf(params);
    if (!config.grantTypes.has(grantType)) {
      throw new Refusal(400, 'unsupported_grant_type', `grant type "${grantType.slice(0, 80)}" is not accepted here`);
    }
    for (const name of REQUIRED_PARAMS[grantType] ?? []) requireParam(params, name);
    if (grantType === 'refresh_token') return refreshPlan(config, params['refresh_token']!, params);
    if (grantType === 'password') await checkUsername(params['username']!, config.isUsernameAllowed);
    const plan: Plan = {
      target: 'token',
      form: tokenRequestForm(grantType, params, config),
      details: grantType === 'password' ? { grantType, username: params['username']! } : { grantType },
    };
    return plan;
  };
}

/** A bare `username` + `password` is the password grant: the form older ninja clients send. */
function grantTypeOf(params: Params): string {
  const grantType = params['grant_type'];
  if (grantType !== undefined && grantType !== '') return grantType;
  if (params['username'] !== undefined && params['password'] !== undefined) return 'password';
  throw badRequest('parameter "grant_type" is required (or "username" and "password" for the password grant)');
}

function requireParam(params: Params, name: string): void {
  if (params[name] === undefined || params[name] === '') throw badRequest(`parameter "${name}" is required`);
}

function checkAuthKey(req: Request, expectedDigest: Buffer | undefined): void {
  if (expectedDigest === undefined) return;
  let presented: string | undefined;
  try {
    presented = bearerToken(req);
  } catch {
    presented = undefined;
  }
  if (presented === undefined) {
    throw new Refusal(401, 'invalid_client', 'this endpoint requires Authorization: Bearer <key>', { 'www-authenticate': 'Bearer realm="ninja-auth"' });
  }
  const presentedDigest = sha256Bytes(presented);
  if (!timingSafeEqual(presentedDigest, expectedDigest)) throw new Refusal(403, 'access_denied', 'the key is not valid');
}

async function checkUsername(username: string, isAllowed: ((username: string) => boolean | Promise<boolean>) | undefined): Promise<void> {
  if (isAllowed === undefined) return;
  if ((await isAllowed(username)) !== true) throw new Refusal(403, 'access_denied', 'this user may not sign in here');
}
