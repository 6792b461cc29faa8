import { describe, expect, it } from 'vitest';
import { serverAddressOf, spanName } from '../../src/telemetry/conventions.js';

describe('server.address', () => {
  it('is the URL’s host name: no port, no path, an IPv6 address without its brackets', () => {
    expect(serverAddressOf('https://idp.example.com:8443/oauth/token?x=1')).toBe('idp.example.com');
    expect(serverAddressOf('http://127.0.0.1:9/token')).toBe('127.0.0.1');
    expect(serverAddressOf('http://[::1]:8080/token')).toBe('::1');
    expect(serverAddressOf('HTTPS://IDP.Example.COM/token')).toBe('idp.example.com');
  });

  it('is `unknown` for what is not a URL, and the same answer the second time', () => {
    expect(serverAddressOf('not a url')).toBe('unknown');
    expect(serverAddressOf('not a url')).toBe('unknown');
  });
});

describe('the span name', () => {
  it('is `ninja-auth <endpoint>`', () => {
    expect(['token', 'refresh_token', 'revoke_token'].map((e) => spanName(e as 'token'))).toEqual(['ninja-auth token', 'ninja-auth refresh_token', 'ninja-auth revoke_token']);
  });
});
