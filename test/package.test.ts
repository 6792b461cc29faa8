import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

// Against the built output (npm test builds first), through the package's own exports map.
const run = (args: string[]): string => execFileSync(process.execPath, args, { cwd: process.cwd(), encoding: 'utf8' });

describe('the built package', () => {
  it('has been built', () => {
    expect(existsSync('dist/esm/index.js') && existsSync('dist/cjs/index.js') && existsSync('dist/esm/index.d.ts')).toBe(true);
  });

  it('require() takes the CommonJS entry', () => {
    const out = run(['-e', `
      const pkg = require('ninja-auth');
      const router = pkg.ninjaAuth({ upstream: { tokenUrl: 'http://127.0.0.1:9/token' } });
      let configError;
      try { pkg.ninjaAuth({}); } catch (e) { configError = e; }
      console.log(JSON.stringify({
        entry: require.resolve('ninja-auth').replace(process.cwd(), ''),
        named: typeof pkg.ninjaAuth, sameDefault: pkg.default === pkg.ninjaAuth,
        router: typeof router, configError: configError instanceof pkg.NinjaAuthConfigError,
      }));`]);
    expect(JSON.parse(out)).toEqual({ entry: '/dist/cjs/index.js', named: 'function', sameDefault: true, router: 'function', configError: true });
  });

  it('import takes the ES module entry, default and named', () => {
    const out = run(['--input-type=module', '-e', `
      import ninjaAuth, { ninjaAuth as named, NinjaAuthConfigError } from 'ninja-auth';
      const router = named({ upstream: { tokenUrl: 'http://127.0.0.1:9/token' } });
      console.log(JSON.stringify({
        entry: import.meta.resolve('ninja-auth').replace('file://' + process.cwd(), ''),
        sameDefault: ninjaAuth === named, router: typeof router, errorClass: typeof NinjaAuthConfigError,
      }));`]);
    expect(JSON.parse(out)).toEqual({ entry: '/dist/esm/index.js', sameDefault: true, router: 'function', errorClass: 'function' });
  });
});
