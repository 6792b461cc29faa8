// Before the tests: the Redis store is tested against a real redis-server. Each test file starts its own on a
// free loopback port unless REDIS_URL names one. When the binary is missing, install it where that is
// possible without asking (root with apt-get), else say how.
import { execFileSync, spawnSync } from 'node:child_process';

const has = (command) => spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;

if (!process.env.REDIS_URL && !has('redis-server')) {
  if (process.getuid?.() === 0 && has('apt-get')) {
    process.stdout.write('redis-server is missing: installing it with apt-get\n');
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    execFileSync('apt-get', ['install', '-y', '-qq', 'redis-server'], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  } else {
    process.stderr.write('The tests need redis-server: install it (apt-get install redis-server, brew install redis) or set REDIS_URL.\n');
    process.exit(1);
  }
}
