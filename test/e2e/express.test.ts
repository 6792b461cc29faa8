import express, { type ErrorRequestHandler } from 'express';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ninjaAuth } from '../../src/index.js';
import { fixedReply, type RawUpstream, rawUpstream } from '../helpers/servers.js';

// Run by both vitest projects: EXPRESS_MAJOR says which Express this run must have loaded.
let upstream: RawUpstream;
beforeAll(async () => {
  upstream = await rawUpstream(fixedReply(200, { 'content-type': 'application/json' }, '{"access_token":"at"}'));
});
afterAll(async () => {
  await upstream.close();
});

describe(`Express ${process.env['EXPRESS_MAJOR']}`, () => {
  it('is the Express this run is about', async () => {
    const { version } = (await import('express/package.json', { with: { type: 'json' } })).default as { version: string };
    expect(version.split('.')[0]).toBe(process.env['EXPRESS_MAJOR']);
  });

  it('an unexpected failure inside the router is answered by the router, never left hanging', async () => {
    const hostErrors: unknown[] = [];
    const onError: ErrorRequestHandler = (error, _req, res, _next) => {
      hostErrors.push(error);
      res.status(599).end();
    };
    const app = express();
    app.use(ninjaAuth({ upstream: { tokenUrl: upstream.url }, allowUsernames: async () => Promise.reject(new Error('directory down')) }));
    app.use(onError);
    const res = await request(app).post('/auth/token').type('form').send({ username: 'u', password: 'p' });
    expect(res.status).toBe(500);
    expect(res.body.error).toBe('server_error');
    expect(hostErrors).toHaveLength(0);
  });

  it('errors of the host app’s own routes still reach its error handler', async () => {
    const app = express();
    app.use(ninjaAuth({ upstream: { tokenUrl: upstream.url } }));
    app.get('/boom', () => {
      throw new Error('host route failed');
    });
    app.use(((error, _req, res, _next) => {
      res.status(599).json({ caught: (error as Error).message });
    }) as ErrorRequestHandler);
    const res = await request(app).get('/boom');
    expect(res.status).toBe(599);
    expect(res.body.caught).toBe('host route failed');
  });

  it('the router works mounted under a path, after body parsers', async () => {
    const app = express();
    app.use(express.json(), express.urlencoded({ extended: false }));
    app.use('/api', ninjaAuth({ upstream: { tokenUrl: upstream.url } }));
    const res = await request(app).post('/api/auth/refresh_token').type('form').send({ refresh_token: 'rt' });
    expect(res.status).toBe(200);
    expect(res.text).toBe('{"access_token":"at"}');
  });
});
