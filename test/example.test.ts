import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

describe('example-app', () => {
  it('the demo runs the main job end to end against the built package and exits 0', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['example-app/demo.js'], { encoding: 'utf8' });
    expect(stdout.match(/\[hook\] rotation: rt_\S+ → rt_\S+ \(rotated: true\)/g)).toHaveLength(2);
    expect(stdout).toContain('[hook] revoked');
    expect(stdout).toContain('invalid_grant');
    expect(stdout).not.toContain('FAIL');
    expect(stdout).toContain('the demo passed');
  });
});
