import type { IncomingMessage } from 'node:http';
import { DECODERS, type Decoder } from './content-encoding.js';
import { Refusal, badRequest } from './errors.js';

/** The caller's parameters: one string per name, on an object with no prototype. */
export type Params = Record<string, string>;

type BodyKind = 'form' | 'json';

/** The part of an Express request this module reads: body parsers leave `body` and `_body` behind. */
type ParsedRequest = IncomingMessage & { body?: unknown; _body?: boolean };

/**
 * Reads the request's form or JSON parameters, whether or not a body parser of the host app ran first.
 * Throws a `Refusal` for anything malformed, repeated, too large, too slow, encoded in a way the router does not
 * decode, or of another content type.
 */
export async function readParams(req: ParsedRequest, maxBodyBytes: number, timeoutMs: number): Promise<Params> {
  const declaredLength = req.headers['content-length'];
  const hasBody = req.headers['transfer-encoding'] !== undefined || (declaredLength !== undefined && declaredLength !== '0');
  if (!hasBody) return Object.create(null) as Params;
  const kind = bodyKind(req.headers['content-type']);
  if (declaredLength !== undefined && Number(declaredLength) > maxBodyBytes) throw tooLarge();

  if (req._body === true || req.readableEnded) return fromParsedBody(req.body, kind, maxBodyBytes);
  const decode = decoderOf(req.headers['content-encoding']);
  const raw = await readBody(req, maxBodyBytes, timeoutMs);
  return parse(decode === undefined ? raw : decoded(raw, decode, maxBodyBytes), kind);
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


/** The decoder for a `Content-Encoding`, `undefined` for none or `identity`; any other encoding is a 415. */
function decoderOf(contentEncoding: string | undefined): Decoder | undefined {
  const encoding = contentEncoding?.trim().toLowerCase();
  if (encoding === undefined || encoding === '' || encoding === 'identity') return undefined;
  const decoder = DECODERS[encoding];
  if (decoder === undefined) throw new Refusal(415, 'invalid_request', 'the body must be sent uncompressed, or as gzip, deflate or br');
  return decoder;
}

/** The limit holds for the decoded body: a small compressed body cannot unpack into a large one. */
function decoded(raw: Buffer, decode: Decoder, maxBodyBytes: number): Buffer {
  try {
    return decode(raw, { maxOutputLength: maxBodyBytes });
  } catch (error) {
    if (error instanceof RangeError) throw tooLarge();
    throw badRequest('the request body could not be decoded as its Content-Encoding says');
  }
}

function readBody(req: IncomingMessage, limit: number, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = (): void => {
      clearTimeout(deadline);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    const stop = (refusal: Refusal): void => {
      cleanup();
      reject(refusal);
    };
    const deadline = setTimeout(() => stop(new Refusal(408, 'invalid_request', 'the request body did not arrive in time', { connection: 'close' })), timeoutMs);
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        stop(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (): void => stop(badRequest('the request body could not be read'));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

/**
 * A body the host app's parser already read. Its size is checked again here: a chunked body has no
 * `Content-Length`, and the host's parser has a limit of its own, usually larger.
 */
function fromParsedBody(body: unknown, kind: BodyKind, maxBodyBytes: number): Params {
  if (Buffer.isBuffer(body) || typeof body === 'string') {
    const raw = Buffer.from(body);
    if (raw.length > maxBodyBytes) throw tooLarge();
    return parse(raw, kind);
  }
  if (body === undefined || body === null) return Object.create(null) as Params;
  if (typeof body !== 'object' || Array.isArray(body)) throw badRequest('the body must be an object of parameters');
  const params = toParams(Object.entries(body));
  if (encodedLength(params, kind) > maxBodyBytes) throw tooLarge();
  if (kind === 'form') for (const name in params) checkDecoded(name, params[name]!);
  return params;
}

const PERCENT_ESCAPE = /%[0-9A-Fa-f]{2}/;

/**
 * `qs` (Express 5's form parser) leaves a value it cannot decode as UTF-8 percent-encoded, as it came. Such a
 * value cannot be told apart from one that holds those characters literally; it is refused rather than passed on
 * in a form the caller may not have meant.
 */
function checkDecoded(name: string, value: string): void {
  if (!PERCENT_ESCAPE.test(value)) return;
  try {
    decodeURIComponent(value);
  } catch {
    throw badRequest(`parameter "${name.slice(0, 64)}" is not valid UTF-8`);
  }
}

/** The size of the parsed parameters sent again in the body's own format: at most what the caller sent, give or take escapes. */
function encodedLength(params: Params, kind: BodyKind): number {
  const text = kind === 'form' ? new URLSearchParams(params).toString() : JSON.stringify(params);
  return Buffer.byteLength(text);
}

function parse(raw: Buffer, kind: BodyKind): Params {
  const text = raw.toString('utf8');
  return kind === 'form' ? parseForm(text) : parseJson(text);
}

function parseForm(text: string): Params {
  const params = Object.create(null) as Params;
  for (const [name, value] of new URLSearchParams(text)) {
    if (name in params) throw repeated(name);
    checkText(name, value);
    params[name] = value;
  }
  return params;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Values must reach the upstream exactly as sent. Invalid UTF-8, in the bytes or percent-encoded, decodes to
 * U+FFFD, and so does what a host app's parser leaves in its place; a lone surrogate cannot be sent as UTF-8 at all.
 */
function checkText(name: string, value: string): void {
  if (name.includes('\uFFFD') || LONE_SURROGATE.test(name)) throw badRequest('a parameter name is not valid UTF-8');
  if (value.includes('\uFFFD') || LONE_SURROGATE.test(value)) throw badRequest(`parameter "${name.slice(0, 64)}" is not valid UTF-8`);
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
    if (typeof value !== 'string') throw badRequest(`parameter "${name.slice(0, 64)}" must be a string`);
    checkText(name, value);
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
  // Visible ASCII only: a header is read as Latin-1, so any other byte would reach the upstream altered.
  const match = /^Bearer +([\x21-\x7E]+) *$/i.exec(header);
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
