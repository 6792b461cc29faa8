import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The package as published: packed, installed from the tarball into a scratch project, and used from there
// as ESM, as CommonJS and by strict TypeScript consumers, with publint and arethetypeswrong on the tarball.
const root = process.cwd();
let scratch: string;
let tarball: string;
const run = (command: string, args: string[], cwd = scratch): string =>
  execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const tsc = (project: string): string => run(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', project]);

beforeAll(() => {
  scratch = mkdtempSync(path.join(os.tmpdir(), 'ninja-auth-consumer-'));
  const packed = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', scratch], root)) as Array<{ filename: string; files: Array<{ path: string }> }>;
  tarball = path.join(scratch, packed[0]!.filename);
  writeFileSync(path.join(scratch, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', tarball, 'express@5', '@types/express@5', '@types/node@20']);
}, 180_000);
afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

describe('the packed package', () => {
  it('ships only dist/ and the docs', () => {
    const listing = JSON.parse(run('npm', ['pack', '--dry-run', '--json'], root)) as Array<{ files: Array<{ path: string }> }>;
    const outsideDist = listing[0]!.files.map((f) => f.path).filter((p) => !p.startsWith('dist/'));
    expect(outsideDist.sort()).toEqual(['LICENSE', 'README.md', 'package.json']);
  });

  it('ESM import, default and named', () => {
    writeFileSync(path.join(scratch, 'esm.mjs'), `
      import ninjaAuth, { ninjaAuth as named, NinjaAuthConfigError, MemoryStore, RedisStore } from 'ninja-auth';
      const router = named({ upstream: { tokenUrl: 'https://idp.example.com/token' } });
      let error; try { ninjaAuth({}); } catch (e) { error = e; }
      console.log(JSON.stringify([ninjaAuth === named, typeof router, error instanceof NinjaAuthConfigError, typeof MemoryStore, typeof RedisStore]));`);
    expect(JSON.parse(run(process.execPath, ['esm.mjs']))).toEqual([true, 'function', true, 'function', 'function']);
  });

  it('CommonJS require', () => {
    writeFileSync(path.join(scratch, 'cjs.cjs'), `
      const { ninjaAuth, NinjaAuthConfigError, MemoryStore } = require('ninja-auth');
      const router = ninjaAuth({ upstream: { tokenUrl: 'https://idp.example.com/token' }, store: new MemoryStore() });
      let error; try { ninjaAuth({ timeoutMS: 1, upstream: { tokenUrl: 'https://idp.example.com/token' } }); } catch (e) { error = e; }
      console.log(JSON.stringify([typeof router, error instanceof NinjaAuthConfigError, require.resolve('ninja-auth').includes('/dist/cjs/')]));`);
    expect(JSON.parse(run(process.execPath, ['cjs.cjs']))).toEqual(['function', true, true]);
  });

  // jose is loaded by both builds: its own CommonJS build under require(), its ESM build under import.
  it.each([
    ['CommonJS', 'assert.cjs', "const { ninjaAuth } = require('ninja-auth'); const express = require('express'); const http = require('node:http'); const { generateKeyPairSync } = require('node:crypto');"],
    ['ESM', 'assert.mjs', "import { ninjaAuth } from 'ninja-auth'; import express from 'express'; import http from 'node:http'; import { generateKeyPairSync } from 'node:crypto';"],
  ])('private_key_jwt signs its assertions from the %s build', (_build, file, imports) => {
    writeFileSync(path.join(scratch, file), `${imports}
      const seen = [];
      const upstream = http.createServer((req, res) => {
        let body = ''; req.on('data', (c) => (body += c));
        req.on('end', () => { seen.push(new URLSearchParams(body)); res.writeHead(200, { 'content-type': 'application/json' }).end('{}'); });
      }).listen(0, '127.0.0.1', () => {
        const tokenUrl = 'http://127.0.0.1:' + upstream.address().port + '/token';
        const clientAssertionKey = generateKeyPairSync('ed25519').privateKey;
        const app = express().use(ninjaAuth({ upstream: { tokenUrl }, clientId: 'c', clientAssertionKey }));
        const host = app.listen(0, '127.0.0.1', async () => {
          await fetch('http://127.0.0.1:' + host.address().port + '/auth/refresh_token', { method: 'POST', headers: { authorization: 'Bearer rt' } });
          const [header, payload] = seen[0].get('client_assertion').split('.').slice(0, 2).map((part) => JSON.parse(Buffer.from(part, 'base64url').toString()));
          console.log(JSON.stringify([header.alg, payload.aud === tokenUrl, payload.iss]));
          host.closeAllConnections(); host.close(); upstream.close();
        });
      });`);
    expect(JSON.parse(run(process.execPath, [file]))).toEqual(['EdDSA', true, 'c']);
  });

  it.each(['NodeNext', 'Bundler'])('a strict TypeScript consumer with %s resolution', (resolution) => {
    mkdirSync(path.join(scratch, 'src'), { recursive: true });
    writeFileSync(path.join(scratch, 'src/app.ts'), `
      import express from 'express';
      import ninjaAuth, { MemoryStore, ninjaAuth as named, NinjaAuthConfigError, type NinjaAuthOptions, type RotationEvent } from 'ninja-auth';
      const options: NinjaAuthOptions = {
        upstream: { tokenUrl: 'https://idp.example.com/token' },
        clientId: process.env['OAUTH_CLIENT_ID'],
        store: new MemoryStore({ maxEntries: 100 }),
        hooks: { onRotation(event: RotationEvent) { const next: string | undefined = event.tokens.refreshToken; void next; } },
      };
      const app = express();
      app.use(ninjaAuth(options));
      app.use('/api', named());
      // @ts-expect-error a misspelled option is a type error
      named({ timeoutMS: 5 });
      export const isConfigError = (e: unknown): boolean => e instanceof NinjaAuthConfigError;`);
    const module = resolution === 'NodeNext' ? 'NodeNext' : 'ESNext';
    writeFileSync(path.join(scratch, `tsconfig.${resolution}.json`), JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, module, moduleResolution: resolution, target: 'ES2022', types: ['node'], skipLibCheck: false, exactOptionalPropertyTypes: true },
      include: ['src'],
    }));
    expect(tsc(`tsconfig.${resolution}.json`)).toBe('');
  }, 60_000);

  it('publint and arethetypeswrong find nothing', () => {
    expect(run(path.join(root, 'node_modules/.bin/publint'), [], root)).toMatch(/All good/);
    expect(run(path.join(root, 'node_modules/.bin/attw'), [tarball], root)).toMatch(/No problems found/);
  }, 60_000);
});
