// Where the memory store keeps the bytes of its large values (sealed replies): appended to buffers of 1 MiB
// outside the V8 heap. Bytes held on the heap for the replay window survive young collections and are copied
// twice, then die old and are marked; under load a refresh paid about 13 µs for the 2.4 KB that its rotation kept
// that way (bench, plain passthrough retaining 2.4 KB a request: +13 µs held in strings, +15 in a buffer each,
// none copied into one big buffer). A buffer goes back once none of its values is held any longer. The values
// are ciphertext (sealed replies): what a dropped one leaves in a buffer until it is written over is no secret.

export const CHUNK_BYTES = 1024 * 1024;

interface Chunk {
  readonly bytes: Buffer;
  /** How many values held now have their bytes in it. */
  held: number;
}

/** Where one value's bytes are, as {@link ByteLog.append} gave it. */
export interface LogSpan {
  readonly at: number;
  readonly length: number;
}

export class ByteLog {
  /** By number: a position `at` is in chunk `Math.floor(at / CHUNK_BYTES)`. */
  readonly #chunks = new Map<number, Chunk>();
  /** Where the next value goes; a value never spans two chunks. */
  #end = 0;
  /** One emptied chunk kept for the next, so a steady flow of values allocates nothing. */
  #spare: Buffer | undefined;

  /** Copies `bytes` in (at most {@link CHUNK_BYTES}); where they are. */
  append(bytes: Uint8Array): LogSpan {
    let number = Math.floor(this.#end / CHUNK_BYTES);
    if (this.#end + bytes.length > (number + 1) * CHUNK_BYTES) {
      this.#releaseIfEmpty(number);
      number += 1;
      this.#end = number * CHUNK_BYTES;
    }
    let chunk = this.#chunks.get(number);
    if (chunk === undefined) {
      chunk = { bytes: this.#spare ?? Buffer.allocUnsafeSlow(CHUNK_BYTES), held: 0 };
      this.#spare = undefined;
      this.#chunks.set(number, chunk);
    }
    const at = this.#end;
    chunk.bytes.set(bytes, at - number * CHUNK_BYTES);
    chunk.held += 1;
    this.#end += bytes.length;
    return { at, length: bytes.length };
  }

  /** The bytes of a value held now: a view, valid until {@link drop}. */
  view({ at, length }: LogSpan): Buffer {
    const number = Math.floor(at / CHUNK_BYTES);
    const start = at - number * CHUNK_BYTES;
    return this.#chunks.get(number)!.bytes.subarray(start, start + length);
  }

  /** The value is no longer held: its chunk goes back once it holds none, unless it is the one being written. */
  drop({ at }: LogSpan): void {
    const number = Math.floor(at / CHUNK_BYTES);
    const chunk = this.#chunks.get(number);
    if (chunk === undefined) return;
    chunk.held -= 1;
    if (number !== Math.floor(this.#end / CHUNK_BYTES)) this.#releaseIfEmpty(number);
  }

  /** Bytes outside the heap now, in chunks (the spare included). */
  get reserved(): number {
    return (this.#chunks.size + (this.#spare === undefined ? 0 : 1)) * CHUNK_BYTES;
  }

  clear(): void {
    this.#chunks.clear();
    this.#spare = undefined;
  }

  #releaseIfEmpty(number: number): void {
    const chunk = this.#chunks.get(number);
    if (chunk === undefined || chunk.held > 0) return;
    this.#chunks.delete(number);
    this.#spare ??= chunk.bytes;
  }
}
