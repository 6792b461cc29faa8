// What the bench scripts share: starting the processes, talking to them, the load itself, where each process
// runs, and how their numbers are summed up.
import { fork, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';

const here = new URL('.', import.meta.url).pathname;

/** Forks one of the bench's scripts and waits for the port it listens on. */
export function start(script, argv, execArgv = [], env = process.env) {
  const child = fork(`${here}${script}`, argv, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv, env });
  return once(child, 'message').then(([message]) => ({ child, port: message.port }));
}

/** Sends a question ('stats', 'calls') over IPC and waits for the answer. */
export function ask(child, question) {
  const answer = once(child, 'message').then(([message]) => message);
  child.send(question);
  return answer;
}

let sequence = 0;

/** autocannon requests for a refresh: a fresh refresh token on each, as real traffic has, so nothing can be answered from a cache. */
export function refreshRequests(path) {
  return [
    {
      method: 'POST',
      path,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      setupRequest: (req) => ({ ...req, body: `grant_type=refresh_token&refresh_token=rt-bench-${++sequence}-abcdefghijklmnop` }),
    },
  ];
}

/** The refresh load on a proxy on loopback: `connections` at once for `seconds`, as {@link refreshRequests}. */
export function refreshLoad(port, seconds, { connections = 32, path = '/auth/refresh_token' } = {}) {
  return autocannon({ url: `http://127.0.0.1:${port}`, connections, duration: seconds, requests: refreshRequests(path) });
}

/** The entry of the build in another checkout (`--compare=DIR`, a path from the working directory), for NINJA_AUTH_FROM. */
export const buildEntry = (dir) => new URL(`${dir.replace(/\/$/, '')}/dist/esm/index.js`, `file://${process.cwd()}/`).href;

/** This checkout and, with `--compare=DIR` (from the working directory, as run.mjs takes it), the other one. */
export const checkouts = (compare) => [new URL('..', import.meta.url).pathname, ...(compare === undefined ? [] : [compare])].map((dir) => path.resolve(dir));

/** The median; of an even count, the upper of the two middle values. */
export const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/** Asked once, on the first pin: importing this module runs nothing. */
let canPin;

/**
 * Gives the proxies a core of their own (the last) and puts everything else (token endpoint, Redis, the load
 * generator) on the others, so that a proxy's CPU time is not inflated by sharing its core with the load. Where
 * taskset is missing, or there is one core, nothing moves. Returns whether the processes were pinned.
 */
export function pin({ proxy = [], others = [] }) {
  canPin ??= os.cpus().length >= 2 && spawnSync('sh', ['-c', 'command -v taskset']).status === 0;
  if (!canPin) return false;
  const last = os.cpus().length - 1;
  const rest = last === 1 ? '0' : `0-${last - 1}`;
  const move = (pid, cpus) => spawnSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' }).status === 0;
  return [...[proxy].flat().map((pid) => move(pid, String(last))), ...others.map((pid) => move(pid, rest))].every(Boolean);
}

/**
 * Lets one of `children` run while the others are stopped (SIGSTOP): an idle proxy still collects garbage after its
 * turn, on the cores the load generator and the token endpoint need, and that lands on whichever proxy is measured
 * next. `all()` continues them all; it runs on exit too, so that none is left stopped.
 */
export function oneAtATime(children) {
  const signal = (child, name) => child.exitCode === null && child.signalCode === null && child.kill(name);
  const all = () => children.forEach((child) => signal(child, 'SIGCONT'));
  process.on('exit', all);
  return {
    only: (running) => {
      for (const child of children) if (child !== running) signal(child, 'SIGSTOP');
      signal(running, 'SIGCONT');
    },
    all,
  };
}
