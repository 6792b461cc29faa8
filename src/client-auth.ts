import { assertionSigner } from './client-assertion.js';
import type { ClientCredentials } from './options.js';
import type { ClientAuthMethod } from './types.js';
import type { UpstreamCall } from './upstream.js';

/**
 * Puts the router's client authentication on an upstream form, after taking off whatever client credentials
 * the caller sent. Chosen once per site; asynchronous only where an assertion is signed for the request.
 */
export type ClientAuthenticator = (url: string, form: URLSearchParams) => UpstreamCall | Promise<UpstreamCall>;

export const JWT_BEARER_ASSERTION = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** Client credentials a caller may try to send; only the router authenticates the client. */
const CALLER_CREDENTIALS = ['client_secret', 'client_assertion', 'client_assertion_type'];

/** The methods whose credential is the TLS client certificate (RFC 8705 §2). */
export const MTLS_METHODS: ReadonlySet<ClientAuthMethod> = new Set(['tls_client_auth', 'self_signed_tls_client_auth']);

/**
 * The authenticator for `method`. The credentials it needs were checked by `parseOptions`; a method chosen by
 * discovery is one whose credentials are configured.
 */
export function clientAuthenticator(client: ClientCredentials, method: ClientAuthMethod): ClientAuthenticator {
  const { id, secret } = client;
  const withClientId = (form: URLSearchParams): URLSearchParams => {
    for (const name of CALLER_CREDENTIALS) form.delete(name);
    if (id !== undefined) form.set('client_id', id);
    return form;
  };
  switch (method) {
    case 'client_secret_basic': {
      const authorization = `Basic ${Buffer.from(`${formEncode(id!)}:${formEncode(secret!)}`).toString('base64')}`;
      return (url, form) => {
        for (const name of CALLER_CREDENTIALS) form.delete(name);
        form.delete('client_id');
        return { url, form, authorization };
      };
    }
    case 'client_secret_post':
      return (url, form) => {
        withClientId(form).set('client_secret', secret!);
        return { url, form };
      };
    case 'client_secret_jwt':
    case 'private_key_jwt': {
      const signing = method === 'private_key_jwt' ? client.assertionKey : client.secretAssertionKey;
      const sign = assertionSigner(signing!, id!);
      return async (url, form) => {
        const assertion = await sign(url);
        withClientId(form).set('client_assertion_type', JWT_BEARER_ASSERTION);
        form.set('client_assertion', assertion);
        return { url, form };
      };
    }
    case 'tls_client_auth':
    case 'self_signed_tls_client_auth':
    case 'none':
      return (url, form) => ({ url, form: withClientId(form) });
  }
}

/** RFC 6749 §2.3.1: id and secret are form-encoded before they are joined and base64-encoded. */
function formEncode(value: string): string {
  return new URLSearchParams([['', value]]).toString().slice(1);
}
