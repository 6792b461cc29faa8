import axios from 'axios';
import request from 'supertest';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { asBytes, hostApp } from '../helpers/host.js';
import { fixedReply, type RawUpstream, rawUpstream } from '../helpers/servers.js';

const REPLY = '{ "access_token" : "at",  "refresh_token":"rt-2" }';
let upstream: RawUpstream;
let connections = 0;
beforeAll(async () => {
  upstream = await rawUpstream(fixedReply(200, { 'content-type': 'application/json' }, REPLY));
  upstream.server.on('connection', () => connections++);
});
afterAll(async () => {
  await upstream.close();
});
beforeEach(() => {
  connections = 0;
});

describe('the upstream client', () => {
  it('is built once per router and keeps its connection alive across requests', async () => {
    const host = hostApp({ upstream: { tokenUrl: upstream.url } });
    for (let i = 0; i < 5; i++) {
      const res = await request(host).post('/auth/refresh_token').set('authorization', `Bearer rt-${i}`);
      expect(res.status).toBe(200);
    }
    expect(connections).toBe(1);
  });

  it('httpClient: the caller’s axios instance is used, and still yields the raw bytes despite its JSON defaults', async () => {
    const client = axios.create({ responseType: 'json', maxRedirects: 5 });
    const seenUrls: string[] = [];
    client.interceptors.request.use((config) => {
      seenUrls.push(String(config.url));
      return config;
    });
    const res = await request(hostApp({ upstream: { tokenUrl: upstream.url }, httpClient: client }))
      .post('/auth/refresh_token')
      .set('authorization', 'Bearer rt-1')
      .buffer(true)
      .parse(asBytes);
    expect(seenUrls).toEqual([upstream.url]);
    expect(res.body.toString()).toBe(REPLY);
  });
});

describe('timeouts with a caller’s axios instance', () => {
  it('timeoutMs still bounds the exchange (through an abort signal) → 504', async () => {
    const silent = await rawUpstream(() => undefined);
    try {
      const res = await request(hostApp({ upstream: { tokenUrl: silent.url }, httpClient: axios.create(), timeoutMs: 150 }))
        .post('/auth/refresh_token')
        .set('authorization', 'Bearer rt-1');
      expect(res.status).toBe(504);
      expect(res.body.error).toBe('upstream_timeout');
    } finally {
      await silent.close();
    }
  });
});

describe('unexpected failures', () => {
  it('a throwing allowUsernames → 500 server_error, nothing of the error shown, nothing sent upstream', async () => {
    upstream.requests.length = 0;
    const host = hostApp({
      upstream: { tokenUrl: upstream.url },
      allowUsernames: () => {
        throw new Error('directory down at ldap://10.0.0.5');
      },
    });
    const res = await request(host).post('/auth/token').type('form').send({ username: 'u', password: 'p' });
    expect(res.status).toBe(500);
    expect(res.body).toEqual({ error: 'server_error', error_description: 'the token proxy failed unexpectedly' });
    expect(res.headers['cache-control']).toBe('no-store');
    expect(upstream.requests).toHaveLength(0);
  });
});
