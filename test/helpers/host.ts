import express, { type RequestHandler } from 'express';
import type { Response as SuperagentResponse } from 'superagent';
import { ninjaAuth } from '../../src/index.js';
import type { NinjaAuthOptions } from '../../src/index.js';

/** A host app that mounts the router, after whatever middleware the test puts first. */
export function hostApp(options: NinjaAuthOptions, before: RequestHandler[] = []): express.Express {
  const app = express();
  app.disable('x-powered-by');
  for (const middleware of before) app.use(middleware);
  app.use(ninjaAuth(options));
  app.use((_req, res) => {
    res.status(404).send('host app: not found');
  });
  return app;
}

/** Waits until `check` holds, for hooks that run after the response is out. */
export async function eventually(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A supertest parser that keeps the body as the exact bytes received: `.buffer(true).parse(asBytes)`. */
export function asBytes(res: SuperagentResponse, callback: (error: Error | null, body: Buffer) => void): void {
  const stream = res as unknown as NodeJS.ReadableStream;
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  stream.on('end', () => callback(null, Buffer.concat(chunks)));
}
