import { clientAuthenticator, type ClientAuthenticator } from './client-auth.js';
import { Refusal } from './errors.js';
import { discoveryLog } from './log.js';
import { type Configuration, upstreamUrlProblem } from './options.js';
import type { ClientAuthMethod } from './types.js';
import type { UpstreamClient } from './upstream.js';

/** The upstream's endpoints and how to authenticate to them, fixed or learned from the issuer's metadata. */
export interface UpstreamSite {
  readonly tokenUrl: string;
  readonly revokeUrl: string | undefined;
  readonly authenticate: ClientAuthenticator;
}

/** The site, at once when configured, or once discovery has answered; throws a 502 `Refusal` while it cannot. */
export type SiteResolver = () => UpstreamSite | Promise<UpstreamSite>;

const MAX_BACKOFF_MS = 60_000;

export function siteResolver(config: Configuration, client: UpstreamClient): SiteResolver {
  const { tokenUrl, revokeUrl, issuer } = config.upstream;
  if (issuer === undefined) {
    const site: UpstreamSite = { tokenUrl: tokenUrl!, revokeUrl, authenticate: clientAuthenticator(config.client, config.client.auth ?? 'none') };
    return () => site;
  }

  let site: UpstreamSite | undefined;
  let pending: Promise<UpstreamSite> | undefined;
  let failures = 0;
  let retryAt = 0;
  const discover = async (): Promise<UpstreamSite> => {
    const metadata = await readMetadata(issuer, client, config.upstream.allowInsecure);
    return {
      tokenUrl: tokenUrl ?? metadata.tokenEndpoint,
      revokeUrl: revokeUrl ?? metadata.revocationEndpoint,
      authenticate: clientAuthenticator(config.client, config.client.auth ?? chooseClientAuth(config.client.secret, metadata.authMethods)),
    };
  };
  return () => {
    if (site !== undefined) return site;
    if (pending !== undefined) return pending;
    if (Date.now() < retryAt) throw unavailable();
    pending = discover().then(
      (found) => {
        site = found;
        failures = 0;
        discoveryLog('discovered the endpoints of %s', issuer);
        return found;
      },
      (error: unknown) => {
        failures++;
        const backoffMs = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (failures - 1));
        retryAt = Date.now() + backoffMs;
        discoveryLog('discovery of %s failed (%s); next try in %d ms', issuer, error instanceof Error ? error.message : String(error), backoffMs);
        throw unavailable();
      },
    );
    pending.catch(() => undefined).finally(() => {
      pending = undefined;
    });
    return pending;
  };
}

function unavailable(): Refusal {
  return new Refusal(502, 'upstream_unavailable', 'the authorization server could not be reached');
}

interface Metadata {
  readonly tokenEndpoint: string;
  readonly revocationEndpoint: string | undefined;
  readonly authMethods: readonly string[] | undefined;
}

/** OpenID Connect Discovery first, then RFC 8414 (where the well-known part goes before the issuer's path). */
export function metadataUrls(issuer: string): string[] {
  const url = new URL(issuer);
  const path = url.pathname.replace(/\/$/, '');
  return [`${url.origin}${path}/.well-known/openid-configuration`, `${url.origin}/.well-known/oauth-authorization-server${path}`];
}

async function readMetadata(issuer: string, client: UpstreamClient, allowInsecure: boolean): Promise<Metadata> {
  const statuses: string[] = [];
  for (const url of metadataUrls(issuer)) {
    const outcome = await client.get(url);
    if (outcome.kind === 'failed') throw new Error(`the metadata request failed (${outcome.cause})`);
    if (outcome.status < 200 || outcome.status > 299) {
      statuses.push(String(outcome.status));
      continue;
    }
    return checkMetadata(outcome.json, issuer, allowInsecure);
  }
  throw new Error(`no metadata at either well-known URL (HTTP ${statuses.join(', ')})`);
}

function checkMetadata(json: unknown, issuer: string, allowInsecure: boolean): Metadata {
  if (typeof json !== 'object' || json === null) throw new Error('the metadata is not a JSON object');
  const fields = json as Record<string, unknown>;
  const sameIssuer = typeof fields['issuer'] === 'string' && withoutTrailingSlash(fields['issuer']) === withoutTrailingSlash(issuer);
  if (!sameIssuer) throw new Error('the metadata names another issuer');
  const url = (name: string, required: boolean): string | undefined => {
    const value = fields[name];
    if (value === undefined && !required) return undefined;
    if (typeof value !== 'string') throw new Error(`the metadata has no usable ${name}`);
    const problem = upstreamUrlProblem(value, allowInsecure);
    if (problem !== undefined) throw new Error(`${name} ${problem}`);
    return value;
  };
  const methods = fields['token_endpoint_auth_methods_supported'];
  return {
    tokenEndpoint: url('token_endpoint', true)!,
    revocationEndpoint: url('revocation_endpoint', false),
    authMethods: Array.isArray(methods) ? methods.filter((m): m is string => typeof m === 'string') : undefined,
  };
}

const withoutTrailingSlash = (value: string): string => value.replace(/\/$/, '');

/** RFC 8414 §2: without the list, client_secret_basic is the default; with it, post is preferred as without discovery. */
function chooseClientAuth(secret: string | undefined, supported: readonly string[] | undefined): ClientAuthMethod {
  if (secret === undefined) return 'none';
  if (supported === undefined) return 'client_secret_basic';
  if (supported.includes('client_secret_post')) return 'client_secret_post';
  if (supported.includes('client_secret_basic')) return 'client_secret_basic';
  return 'client_secret_post';
}
