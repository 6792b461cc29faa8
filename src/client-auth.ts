import type { ClientCredentials } from './options.js';
import type { ClientAuthMethod } from './types.js';
import type { UpstreamCall } from './upstream.js';

/** Puts the router's client credentials on an upstream form, and takes the caller's `client_secret` off it. */
export type ClientAuthenticator = (url: string, form: URLSearchParams) => UpstreamCall;

export function clientAuthenticator(client: ClientCredentials, auth: ClientAuthMethod): ClientAuthenticator {
  const { id, secret } = client;
  if (auth === 'client_secret_basic' && id !== undefined && secret !== undefined) {
    const authorization = `Basic ${Buffer.from(`${formEncode(id)}:${formEncode(secret)}`).toString('base64')}`;
    return (url, form) => {
      form.delete('client_secret');
      form.delete('client_id');
      return { url, form, authorization };
    };
  }
  return (url, form) => {
    form.delete('client_secret');
    if (id !== undefined) form.set('client_id', id);
    if (auth === 'client_secret_post' && secret !== undefined) form.set('client_secret', secret);
    return { url, form };
  };
}

/** RFC 6749 §2.3.1: id and secret are form-encoded before they are joined and base64-encoded. */
function formEncode(value: string): string {
  return new URLSearchParams([['', value]]).toString().slice(1);
}
