import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The optional peer as users meet it: the packed package in a scratch project, first without
// @opentelemetry/api (it must work and load nothing; test/packaging.test.ts type-checks the declarations there),
// then with the API and the SDK installed beside it (it must record, from the ES module and the CommonJS build).
const root = process.cwd();
let scratch: string;
const run = (command: string, args: string[], cwd = scratch): string =>
  execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const npmInstall = (...packages: string[]): string => run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', ...packages]);
const versionOf = (name: string): string => (JSON.parse(run('npm', ['ls', name, '--json', '--depth=0'], root)) as { dependencies: Record<string, { version: string }> }).dependencies[name]!.version;

beforeAll(() => {
  scratch = mkdtempSync(path.join(os.tmpdir(), 'ninja-auth-telemetry-'));
  const packed = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', scratch], root)) as Array<{ filename: string }>;
  writeFileSync(path.join(scratch, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  npmInstall(path.join(scratch, packed[0]!.filename), 'express@5');
}, 180_000);
afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

/**
 * A host app with the router in front of a loopback token endpoint, one login through it, then what it
 * printed: the status, whether any OpenTelemetry module was loaded, and what `after` adds.
 */
const hostScript = (kind: 'esm' | 'cjs', options: string, before = '', after = '() => null') => `
  ${kind === 'esm' ? `import http from 'node:http'; import { createRequire } from 'node:module'; import express from 'express'; import { ninjaAuth } from 'ninja-auth';
  const { cache } = createRequire(import.meta.url);` : `const http = require('node:http'); const express = require('express'); const { ninjaAuth } = require('ninja-auth');
  const { cache } = require;`}
  (async () => {
    ${before}
    const upstream = http.createServer((req, res) => { req.resume(); req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"access_token":"at"}')); });
    await new Promise((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const app = express();
    app.use(ninjaAuth({ upstream: { tokenUrl: 'http://127.0.0.1:' + upstream.address().port + '/token' }, ${options} }));
    const host = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => host.once('listening', resolve));
    const reply = await fetch('http://127.0.0.1:' + host.address().port + '/auth/token', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials' });
    const loaded = Object.keys(cache).some((file) => file.includes('@opentelemetry'));
    console.log(JSON.stringify({ status: reply.status, loaded, recorded: await (${after})() }));
    host.close(); upstream.close(); host.closeAllConnections(); upstream.closeAllConnections();
  })();`;

function host(kind: 'esm' | 'cjs', options: string, before?: string, after?: string): { status: number; loaded: boolean; recorded: unknown } {
  const file = `host-${Math.random().toString(36).slice(2)}.${kind === 'esm' ? 'mjs' : 'cjs'}`;
  writeFileSync(path.join(scratch, file), hostScript(kind, options, before, after));
  return JSON.parse(run(process.execPath, [file])) as { status: number; loaded: boolean; recorded: unknown };
}

describe('without @opentelemetry/api installed', () => {
  it('the API is not resolvable in the scratch project', () => {
    expect(() => run(process.execPath, ['-e', "require.resolve('@opentelemetry/api')"])).toThrow(/Cannot find module/);
  });

  it.each(['esm', 'cjs'] as const)('%s: the router serves requests and loads nothing, by default and with telemetry: false', (kind) => {
    expect(host(kind, '')).toEqual({ status: 200, loaded: false, recorded: null });
    expect(host(kind, 'telemetry: false')).toEqual({ status: 200, loaded: false, recorded: null });
  });
});

describe('with @opentelemetry/api and the SDK installed beside it', () => {
  beforeAll(() => {
    npmInstall(...['@opentelemetry/api', '@opentelemetry/sdk-metrics'].map((name) => `${name}@${versionOf(name)}`));
  }, 180_000);

  // The host registers the SDK's MeterProvider globally, through its own import of the API.
  const register = (kind: 'esm' | 'cjs') => `
    const api = ${kind === 'esm' ? "await import('@opentelemetry/api')" : "require('@opentelemetry/api')"};
    const sdk = ${kind === 'esm' ? "await import('@opentelemetry/sdk-metrics')" : "require('@opentelemetry/sdk-metrics')"};
    class Reader extends sdk.MetricReader { async onForceFlush() {} async onShutdown() {} }
    const reader = new Reader();
    api.metrics.setGlobalMeterProvider(new sdk.MeterProvider({ readers: [reader] }));
    globalThis.collect = async () => (await reader.collect()).resourceMetrics.scopeMetrics
      .flatMap((s) => s.metrics).filter((m) => m.descriptor.name === 'ninja_auth.request.duration')
      .flatMap((m) => m.dataPoints.map((p) => [p.attributes['ninja_auth.outcome'], p.value.count]));`;

  it.each(['esm', 'cjs'] as const)('%s: the router records to the global providers', (kind) => {
    expect(host(kind, '', register(kind), 'globalThis.collect')).toEqual({ status: 200, loaded: true, recorded: [['issued', 1]] });
  });

  it.each(['esm', 'cjs'] as const)('%s: telemetry: false still loads nothing', (kind) => {
    expect(host(kind, 'telemetry: false')).toEqual({ status: 200, loaded: false, recorded: null });
  });
});
