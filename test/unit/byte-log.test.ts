import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ByteLog, CHUNK_BYTES } from '../../src/stores/byte-log.js';

describe('the memory store’s log of large values', () => {
  it('gives back the bytes appended, and a value never spans two buffers', () => {
    const log = new ByteLog();
    const values = Array.from({ length: 2_000 }, () => randomBytes(1_400));
    const spans = values.map((value) => log.append(value));
    spans.forEach((span, i) => expect(log.view(span).equals(values[i]!)).toBe(true));
    for (const { at, length } of spans) expect(Math.floor(at / CHUNK_BYTES)).toBe(Math.floor((at + length - 1) / CHUNK_BYTES));
    expect(log.reserved).toBe(3 * CHUNK_BYTES);
  });

  it('a buffer goes back once none of its values is held; the one being written stays, and one is kept spare', () => {
    const log = new ByteLog();
    const perChunk = Math.floor(CHUNK_BYTES / 1_000);
    const first = Array.from({ length: perChunk }, () => log.append(randomBytes(1_000)));
    const second = log.append(randomBytes(1_000));
    expect(log.reserved).toBe(2 * CHUNK_BYTES);
    first.slice(1).forEach((span) => log.drop(span));
    expect(log.reserved).toBe(2 * CHUNK_BYTES);
    log.drop(first[0]!);
    // The first buffer is spare now; the second is being written, so it stays even when empty.
    expect(log.reserved).toBe(2 * CHUNK_BYTES);
    log.drop(second);
    expect(log.reserved).toBe(2 * CHUNK_BYTES);
    // A steady flow reuses the spare: held values never cost more than what holds them, plus two buffers.
    let held = Array.from({ length: 10 }, () => log.append(randomBytes(1_000)));
    for (let i = 0; i < 20_000; i++) {
      log.drop(held.shift()!);
      held.push(log.append(randomBytes(1_000)));
    }
    expect(log.reserved).toBeLessThanOrEqual(2 * CHUNK_BYTES);
    held.forEach((span) => log.drop(span));
    held = [];
    log.clear();
    expect(log.reserved).toBe(0);
  });
});
