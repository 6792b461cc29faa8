import type { IncomingMessage } from 'node:http';
import { Refusal, badRequest } from './errors.js';

/** The caller's parameters: one string per name, on an object with no prototype. */
export type Params = Record<string, string>;

type BodyKind = 'form' | 'json';

/** The part of an Express request this module reads: body parsers leave `body` and `_body` behind. */
type ParsedRequest = IncomingMessage & { body?: unknown; _body?: boolean };

/**
 * Reads the request's form or JSON parameters, whether or not a body parser of the host app ran first.
 * Throws a `Refusal` for anything malformed, repeated, too large or of another content type.
 */
export async function readParams(req: ParsedRequest, maxBodyBytes: number): Promise<Params> {
  const declaredLength = req.headers['content-length'];
  const hasBody = req.headers['transfer-encoding'] !== undefined || (declaredLength !== undefined && declaredLength !== '0');
  if (!hasBody) return Object.create(null) as Params;
  const kind = bodyKind(req.headers['content-type']);

  if (req._body === true || req.readableEnded) return fromParsedBody(req.body, kind);
  if (declaredLength !== undefined && Number(declaredLength) > maxBodyBytes) throw tooLarge();
  return parse(await readBody(req, maxBodyBytes), kind);
}

function bodyKind(contentType: string | undefined): BodyKind {
  const mediaType = contentType?.split(';', 1)[0]!.trim().toLowerCase();
  if (mediaType === 'application/x-www-form-urlencoded') return 'form';
  if (mediaType === 'application/json') return 'json';
  throw new Refusal(415, 'invalid_request', 'the body must be application/x-www-form-urlencoded or application/json');
}

function tooLarge(): Refusal {
  return new Refusal(413, 'invalid_request', 'the request body is too large', { connection: 'close' });
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (): void => {
      cleanup();
      reject(badRequest('the request body could not be read'));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

function fromParsedBody(body: unknown, kind: BodyKind): Params {
  if (Buffer.isBuffer(body) || typeof body === 'string') return parse(Buffer.from(body), kind);
  if (body === undefined || body === null) return Object.create(null) as Params;
  if (typeof body !== 'object' || Array.isArray(body)) throw badRequest('the body must be an object of parameters');
  return toParams(Object.entries(body));
}

function parse(raw: Buffer, kind: BodyKind): Params {
  const text = raw.toString('utf8');
  return kind === 'form' ? parseForm(text) : parseJson(text);
}

function parseForm(text: string): Params {
  const params = Object.create(null) as Params;
  for (const [name, value] of new URLSearchParams(text)) {
    if (name in params) throw repeated(name);
    params[name] = value;
  }
  return params;
}

function parseJson(text: string): Params {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw badRequest('the JSON body is malformed');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw badRequest('the JSON body must be an object');
  const repeatedKey = findRepeatedTopLevelKey(text);
  if (repeatedKey !== undefined) throw repeated(repeatedKey);
  return toParams(Object.entries(value));
}

function toParams(entries: Array<[string, unknown]>): Params {
  const params = Object.create(null) as Params;
  for (const [name, value] of entries) {
    if (Array.isArray(value)) throw repeated(name);
    if (typeof value !== 'string') throw badRequest(`parameter "${name}" must be a string`);
    params[name] = value;
  }
  return params;
}

function repeated(name: string): Refusal {
  return badRequest(`parameter "${name}" is repeated`);
}

/** JSON.parse keeps the last of two equal keys silently; the contract says a repeated parameter is a 400. */
function findRepeatedTopLevelKey(json: string): string | undefined {
  const seen = new Set<string>();
  let depth = 0;
  for (let i = 0; i < json.length; i++) {
    const char = json[i];
    if (char === '"') {
      const end = endOfString(json, i);
      let next = end + 1;
      while (next < json.length && /\s/.test(json[next]!)) next++;
      if (depth === 1 && json[next] === ':') {
        const key = JSON.parse(json.slice(i, end + 1)) as string;
        if (seen.has(key)) return key;
        seen.add(key);
      }
      i = end;
    } else if (char === '{' || char === '[') {
      depth++;
    } else if (char === '}' || char === ']') {
      depth--;
    }
  }
  return undefined;
}

function endOfString(json: string, openingQuote: number): number {
  for (let i = openingQuote + 1; i < json.length; i++) {
    if (json[i] === '\\') i++;
    else if (json[i] === '"') return i;
  }
  return json.length;
}

/** The token of an `Authorization: Bearer <token>` header; `undefined` when there is no such header. */
export function bearerToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (header === undefined) return undefined;
  const match = /^Bearer +(\S+) *$/i.exec(header);
  if (match === null) throw badRequest('the Authorization header must be "Bearer <token>"');
  return match[1];
}

/**
 * The token a caller presents either as `Authorization: Bearer <token>` (the ninja form) or as the body
 * parameter `name`: exactly one of the two.
 */
export function presentedToken(fromHeader: string | undefined, params: Params, name: string, what: string): string {
  const fromBody = params[name];
  if (fromHeader !== undefined && fromBody !== undefined) {
    throw badRequest(`send the ${what} in the Authorization header or in the body, not both`);
  }
  const token = fromHeader ?? fromBody;
  if (token === undefined || token === '') {
    throw badRequest(`a ${what} is required: Authorization: Bearer <${name}>, or the "${name}" parameter`);
  }
  return token;
}
