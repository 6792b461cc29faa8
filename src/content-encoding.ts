import zlib from 'node:zlib';

/** Decodes a whole body at once; `maxOutputLength` makes a body that unpacks past it throw a RangeError. */
export type Decoder = (bytes: Buffer, options: zlib.ZlibOptions & zlib.BrotliOptions) => Buffer;

/** The `Content-Encoding`s the router decodes, for the caller's bodies and for the upstream's. */
export const DECODERS: Readonly<Record<string, Decoder>> = {
  gzip: zlib.gunzipSync,
  'x-gzip': zlib.gunzipSync,
  deflate: zlib.inflateSync,
  br: zlib.brotliDecompressSync,
};
