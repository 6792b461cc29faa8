import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { type AxiosAdapter, AxiosError, type AxiosResponse, type InternalAxiosRequestConfig } from 'axios';

/**
 * The transport of the default axios instance: one node:http request on a keep-alive agent, the body
 * collected as raw bytes. axios's own http adapter does much more per request (redirect handling, proxy
 * lookup from the environment, progress events, a keep-alive call on every socket), none of which a token
 * request needs, and which cost more than the proxying itself. Callers who need any of it pass `httpClient`.
 */
export function leanHttpAdapter(agents: { readonly http: http.Agent; readonly https: https.Agent }): AxiosAdapter {
  const targets = new Map<string, Target>();
  // Keyed by what the request names, so a known URL costs a lookup, not a parse.
  const targetOf = (config: InternalAxiosRequestConfig): Target => {
    const key = `${config.baseURL ?? ''} ${config.url ?? ''}`;
    let target = targets.get(key);
    if (target === undefined) {
      target = parseTarget(new URL(config.url ?? '', config.baseURL).href, agents);
      if (targets.size < 32) targets.set(key, target);
    }
    return target;
  };
  return (config) => exchange(config, targetOf(config));
}

interface Target {
  readonly transport: typeof http | typeof https;
  readonly options: http.RequestOptions;
}

function parseTarget(href: string, agents: { readonly http: http.Agent; readonly https: https.Agent }): Target {
  const url = new URL(href);
  const secure = url.protocol === 'https:';
  return {
    transport: secure ? https : http,
    options: {
      protocol: url.protocol,
      hostname: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
      port: url.port === '' ? (secure ? 443 : 80) : Number(url.port),
      path: `${url.pathname}${url.search}`,
      agent: secure ? agents.https : agents.http,
    },
  };
}

const DECODERS: Readonly<Record<string, () => zlib.Gunzip | zlib.Inflate | zlib.BrotliDecompress>> = {
  gzip: () => zlib.createGunzip(),
  'x-gzip': () => zlib.createGunzip(),
  deflate: () => zlib.createInflate(),
  br: () => zlib.createBrotliDecompress(),
};

function exchange(config: InternalAxiosRequestConfig, target: Target): Promise<AxiosResponse> {
  return new Promise((resolve, reject) => {
    const body = requestBody(config.data);
    const headers = outgoingHeaders(config);
    if (body !== undefined) headers['content-length'] = String(body.length);
    const req = target.transport.request({ ...target.options, method: (config.method ?? 'get').toUpperCase(), headers });
    const signal = config.signal as AbortSignal | undefined;
    let settled = false;
    let deadline: NodeJS.Timeout | undefined;
    const onAbort = (): void => fail(new AxiosError('canceled', AxiosError.ERR_CANCELED, config, req));
    const finish = (): boolean => {
      if (settled) return false;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      clearTimeout(deadline);
      return true;
    };
    function fail(error: AxiosError): void {
      if (!finish()) return;
      req.destroy();
      reject(error);
    }

    if (signal?.aborted) {
      onAbort();
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    // Here `timeout` bounds the whole exchange, body included, not only a silent socket.
    if (config.timeout) {
      deadline = setTimeout(() => fail(new AxiosError(`timeout of ${config.timeout}ms exceeded`, AxiosError.ECONNABORTED, config, req)), config.timeout);
    }
    req.on('error', (error: NodeJS.ErrnoException) => fail(AxiosError.from(error, error.code, config, req)));
    req.on('response', (res) => {
      const responseHeaders: Record<string, string | string[] | undefined> = { ...res.headers };
      let stream: Readable = res;
      const decode = config.decompress === false ? undefined : DECODERS[String(res.headers['content-encoding']).toLowerCase()];
      if (decode !== undefined) {
        stream = res.pipe(decode());
        delete responseHeaders['content-encoding'];
        delete responseHeaders['content-length'];
      }
      const limit = config.maxContentLength ?? -1;
      const chunks: Buffer[] = [];
      let size = 0;
      const broken = (error: NodeJS.ErrnoException): void => fail(AxiosError.from(error, error.code ?? AxiosError.ERR_BAD_RESPONSE, config, req));
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (limit > -1 && size > limit) {
          fail(new AxiosError(`maxContentLength size of ${limit} exceeded`, AxiosError.ERR_BAD_RESPONSE, config, req));
          return;
        }
        chunks.push(chunk);
      });
      stream.on('error', broken);
      res.on('error', broken);
      res.on('close', () => {
        if (!res.complete) broken(Object.assign(new Error('the upstream closed the connection mid-body'), { code: 'ECONNRESET' }));
      });
      stream.on('end', () => {
        const bytes = Buffer.concat(chunks, size);
        const response: AxiosResponse = {
          data: config.responseType === 'arraybuffer' ? bytes : bytes.toString('utf8'),
          status: res.statusCode ?? 0,
          statusText: res.statusMessage ?? '',
          headers: responseHeaders,
          config,
          request: req,
        };
        if (!finish()) return;
        const validate = config.validateStatus;
        if (!validate || validate(response.status)) {
          resolve(response);
        } else {
          const code = response.status < 500 ? AxiosError.ERR_BAD_REQUEST : AxiosError.ERR_BAD_RESPONSE;
          reject(new AxiosError(`Request failed with status code ${response.status}`, code, config, req, response));
        }
      });
    });
    req.end(body);
  });
}

function requestBody(data: unknown): Buffer | undefined {
  if (data === undefined || data === null) return undefined;
  if (Buffer.isBuffer(data)) return data;
  if (typeof data === 'string') return Buffer.from(data);
  if (data instanceof URLSearchParams) return Buffer.from(data.toString());
  return Buffer.from(JSON.stringify(data));
}

function outgoingHeaders(config: InternalAxiosRequestConfig): Record<string, string | string[]> {
  const flat: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(config.headers.toJSON())) {
    if (typeof value === 'string' || typeof value === 'number') flat[name] = String(value);
    else if (Array.isArray(value)) flat[name] = value.map(String);
  }
  return flat;
}
