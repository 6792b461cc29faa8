import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';

export interface InstanceProcess {
  readonly origin: string;
  /** How many refreshes have reached the process so far, and how many commands its store has sent. */
  arrived(): Promise<{ refreshes: number; storeCommands: number }>;
  stop(): Promise<void>;
}

/** A separate Node process running the built package with a RedisStore (see instance.mjs). */
export async function startInstance(tokenUrl: string, redisUrl: string, prefix: string): Promise<InstanceProcess> {
  const child: ChildProcess = spawn(process.execPath, ['test/helpers/instance.mjs', tokenUrl, redisUrl, prefix], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const [first] = (await once(lines, 'line')) as [string];
  const { port } = JSON.parse(first) as { port: number };
  return {
    origin: `http://127.0.0.1:${port}`,
    arrived: async () => (await (await fetch(`http://127.0.0.1:${port}/arrived`)).json()) as { refreshes: number; storeCommands: number },
    stop: async () => {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}
