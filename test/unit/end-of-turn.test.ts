import { describe, expect, it } from 'vitest';
import { atEndOfTurn } from '../../src/rotation/end-of-turn.js';

describe('writes held to the end of the turn', () => {
  it('start after the code and promises of this turn, in the order they came, and settle as they do', async () => {
    const order: string[] = [];
    const first = atEndOfTurn(() => {
      order.push('first');
      return undefined;
    });
    const second = atEndOfTurn(async () => {
      order.push('second');
    });
    await Promise.resolve().then(() => order.push('a promise of this turn'));
    order.push('this turn');
    await Promise.all([first, second]);
    expect(order).toEqual(['a promise of this turn', 'this turn', 'first', 'second']);
  });

  it('one that throws or rejects fails alone: the others still run', async () => {
    const ran: string[] = [];
    const results = await Promise.allSettled([
      atEndOfTurn(() => {
        throw new Error('thrown');
      }),
      atEndOfTurn(() => Promise.reject(new Error('rejected'))),
      atEndOfTurn(() => {
        ran.push('after them');
        return undefined;
      }),
    ]);
    expect(results.map((result) => (result.status === 'rejected' ? (result.reason as Error).message : 'done'))).toEqual(['thrown', 'rejected', 'done']);
    expect(ran).toEqual(['after them']);
  });

  it('a write queued while the others start waits for the next turn', async () => {
    const order: string[] = [];
    let nested: Promise<void> | undefined;
    const outer = atEndOfTurn(() => {
      order.push('outer');
      nested = atEndOfTurn(() => {
        order.push('nested');
        return undefined;
      });
      return undefined;
    });
    const sameTurn = new Promise<void>((resolve) => setImmediate(() => {
      order.push('an immediate queued after outer');
      resolve();
    }));
    await Promise.all([outer, sameTurn]);
    await nested;
    expect(order).toEqual(['outer', 'an immediate queued after outer', 'nested']);
  });
});
