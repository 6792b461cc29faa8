import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServer, testRedis } from './helpers/redis.js';

let redis: RedisServer;
beforeAll(async () => {
  redis = await testRedis();
});
afterAll(async () => {
  await redis.stop();
});

async function demo(env: Record<string, string> = {}, args: string[] = []): Promise<string> {
  const { REDIS_URL: _ignored, METRICS_PORT: _alsoIgnored, ...inherited } = process.env;
  const { stdout } = await promisify(execFile)(process.execPath, ['example-app/demo.js', ...args], { encoding: 'utf8', env: { ...inherited, ...env } });
  return stdout;
}

function expectMainJob(stdout: string): void {
  expect(stdout.match(/\[hook\] rotation: rt_\S+ → rt_\S+ \(rotated: true\)/g)).toHaveLength(2);
  expect(stdout).toMatch(/\[hook\] replayed: rt_\S+ → rt_\S+/);
  expect(stdout).toContain('[hook] revoked');
  expect(stdout).toContain('invalid_grant');
  expect(stdout).not.toContain('FAIL');
  expect(stdout).toContain('the demo passed');
}

describe('example-app', () => {
  it('the demo runs the main job end to end against the built package and exits 0', async () => {
    const stdout = await demo();
    expect(stdout).toContain('(memory store)');
    expectMainJob(stdout);
  });

  it('with --private-key-jwt the client authenticates with assertions the provider verifies, one per request', async () => {
    const stdout = await demo({}, ['--private-key-jwt']);
    expect(stdout).toContain('client authentication: private_key_jwt (ES256)');
    expect(stdout).toContain('the provider verified 5 assertions for 5 requests');
    expectMainJob(stdout);
  });

  it('the demo ends with the refresh outcome counters, read from the host app’s Prometheus endpoint', async () => {
    const stdout = await demo();
    const counter = (outcome: string, value: number) => new RegExp(`^  ninja_auth_refresh_outcomes_total\\{ninja_auth_outcome="${outcome}"[^}]*\\} ${value}$`, 'm');
    expect(stdout).toMatch(/GET http:\/\/127\.0\.0\.1:\d+\/metrics/);
    expect(stdout).toMatch(counter('rotated', 2));
    expect(stdout).toMatch(counter('replayed', 1));
    expect(stdout).toMatch(counter('rejected', 1));
  });

  it('with REDIS_URL it uses the Redis store; with METRICS_PORT empty it serves no metrics', async () => {
    const stdout = await demo({ REDIS_URL: redis.url, METRICS_PORT: '' });
    expect(stdout).toContain(`(Redis store at ${redis.url})`);
    expectMainJob(stdout);
    expect(stdout).not.toContain('ninja_auth_refresh_outcomes');
  });
});
