import { clientAuthenticator, type ClientAuthenticator, MTLS_METHODS } from './client-auth.js';
import { Refusal } from './errors.js';
import { discoveryLog } from './log.js';
import { type ClientCredentials, type Configuration, upstreamUrlProblem } from './options.js';
import type { ClientAuthMethod } from './types.js';
import type { UpstreamClient } from './upstream.js';

/** The upstream's endpoints and how to authenticate to them, fixed or learned from the issuer's metadata. */
export interface UpstreamSite {
  readonly tokenUrl: string;
  readonly revokeUrl: string | undefined;
  readonly clientAuth: ClientAuthMethod;
  readonly authenticate: ClientAuthenticator;
}

/** The site, at once when configured, or once discovery has answered; throws a 502 `Refusal` while it cannot. */
export type SiteResolver = () => UpstreamSite | Promise<UpstreamSite>;

const MAX_BACKOFF_MS = 60_000;

export function siteResolver(config: Configuration, client: UpstreamClient): SiteResolver {
  const { tokenUrl, revokeUrl, issuer } = config.upstream;
  if (issuer === undefined) {
    const clientAuth = config.client.auth ?? 'none';
    const site: UpstreamSite = { tokenUrl: tokenUrl!, revokeUrl, clientAuth, authenticate: clientAuthenticator(config.client, clientAuth) };
    return () => site;
  }

  let site: UpstreamSite | undefined;
  let pending: Promise<UpstreamSite> | undefined;
  let failures = 0;
  let retryAt = 0;
  const discover = async (): Promise<UpstreamSite> => {
    const metadata = await readMetadata(issuer, client, config.upstream.allowInsecure);
    const clientAuth = config.client.auth === undefined ? chooseClientAuth(config.client, metadata.authMethods) : checkListed(config.client.auth, metadata.authMethods);
    // RFC 8705 §5: under mTLS, the aliases are where the certificate is asked for. Configured URLs still win.
    const aliases = MTLS_METHODS.has(clientAuth) ? metadata.mtlsAliases : {};
    return {
      tokenUrl: tokenUrl ?? aliases.tokenEndpoint ?? metadata.tokenEndpoint,
      revokeUrl: revokeUrl ?? aliases.revocationEndpoint ?? metadata.revocationEndpoint,
      clientAuth,
      authenticate: clientAuthenticator(config.client, clientAuth),
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
        discoveryLog('discovered the endpoints of %s; client authentication %s', issuer, found.clientAuth);
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
  readonly mtlsAliases: { readonly tokenEndpoint?: string; readonly revocationEndpoint?: string };
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
  const url = (name: string, required: boolean, within = fields, label = name): string | undefined => {
    const value = within[name];
    if (value === undefined && !required) return undefined;
    if (typeof value !== 'string') throw new Error(`the metadata has no usable ${label}`);
    const problem = upstreamUrlProblem(value, allowInsecure);
    if (problem !== undefined) throw new Error(`${label} ${problem}`);
    return value;
  };
  const methods = fields['token_endpoint_auth_methods_supported'];
  const aliases = fields['mtls_endpoint_aliases'];
  const aliasFields = typeof aliases === 'object' && aliases !== null && !Array.isArray(aliases) ? (aliases as Record<string, unknown>) : {};
  const alias = (name: string): string | undefined => url(name, false, aliasFields, `mtls_endpoint_aliases.${name}`);
  const tokenAlias = alias('token_endpoint');
  const revocationAlias = alias('revocation_endpoint');
  return {
    tokenEndpoint: url('token_endpoint', true)!,
    revocationEndpoint: url('revocation_endpoint', false),
    authMethods: Array.isArray(methods) ? methods.filter((m): m is string => typeof m === 'string') : undefined,
    mtlsAliases: { ...(tokenAlias === undefined ? {} : { tokenEndpoint: tokenAlias }), ...(revocationAlias === undefined ? {} : { revocationEndpoint: revocationAlias }) },
  };
}

const withoutTrailingSlash = (value: string): string => value.replace(/\/$/, '');

/** A `clientAuth` option must be one the upstream lists, when it lists any. */
function checkListed(method: ClientAuthMethod, supported: readonly string[] | undefined): ClientAuthMethod {
  if (supported === undefined || supported.includes(method)) return method;
  throw new Error(`clientAuth "${method}" is not in the metadata's token_endpoint_auth_methods_supported (${supported.join(', ')})`);
}

/**
 * Without `clientAuth`: the strongest configured method that the metadata lists (key, then certificate, then
 * secret, post before basic as without discovery). Without the list, RFC 8414 §2's default for a secret
 * (client_secret_basic), and the strongest configured method otherwise.
 */
function chooseClientAuth(client: ClientCredentials, supported: readonly string[] | undefined): ClientAuthMethod {
  const configured: ClientAuthMethod[] = [];
  if (client.assertionKey !== undefined) configured.push('private_key_jwt');
  if (client.certificate) configured.push('tls_client_auth', 'self_signed_tls_client_auth');
  if (client.secret !== undefined) configured.push(supported === undefined ? 'client_secret_basic' : 'client_secret_post', 'client_secret_basic');
  if (configured.length === 0) return 'none';
  if (supported === undefined) return configured[0]!;
  const listed = configured.find((method) => supported.includes(method));
  if (listed !== undefined) return listed;
  throw new Error(`none of the configured client authentication methods (${[...new Set(configured)].join(', ')}) is in the metadata's token_endpoint_auth_methods_supported (${supported.join(', ')})`);
}
