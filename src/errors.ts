import type { ServerResponse } from 'node:http';

/** Thrown by `ninjaAuth()` when an option or its environment variable is missing, malformed or unknown. */
export class NinjaAuthConfigError extends Error {
  override readonly name = 'NinjaAuthConfigError';
  readonly code = 'NINJA_AUTH_CONFIG';
  /** The option's path, e.g. `upstream.tokenUrl`. */
  readonly option: string;
  /** The environment variable that would set it, when there is one. */
  readonly envVar: string | undefined;

  constructor(option: string, problem: string, envVar?: string) {
    const source = envVar ? `option "${option}" (env ${envVar})` : `option "${option}"`;
    super(`ninja-auth: ${source} ${problem}`);
    this.option = option;
    this.envVar = envVar;
  }
}

/** OAuth error codes the router itself answers with. */
export type RouterErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'access_denied'
  | 'unsupported_grant_type'
  | 'unsupported_operation'
  | 'upstream_unavailable'
  | 'upstream_timeout'
  | 'temporarily_unavailable'
  | 'server_error';

/** A request the router answers itself, without (or instead of) the upstream. */
export class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly error: RouterErrorCode,
    readonly description: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(description);
  }
}

export const badRequest = (description: string): Refusal =>
  new Refusal(400, 'invalid_request', description);

/** Writes an RFC 6749 §5.2-style error body. The description must never hold a secret or an upstream detail. */
export function sendRefusal(res: ServerResponse, refusal: Refusal): void {
  const body = JSON.stringify({ error: refusal.error, error_description: refusal.description });
  res.writeHead(refusal.status, {
    ...refusal.headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    pragma: 'no-cache',
  });
  res.end(body);
}
