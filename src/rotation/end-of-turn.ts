// What the memory store learns from a refresh (the sealed reply, the rotation), which no caller waits for, waits for
// the end of the event loop's turn (setImmediate) and is then done together, every request's of that turn: after
// the replies written in it, one after the other while the same code and data are in the cache. A request that
// reads the store before then has them done first (`startWaitingNow`), so it finds what it would have found had
// they been done at once. Only for a store of this process: another instance could ask a shared store before
// writes sent this late arrive.

/** Taken when this module loads: fake timers a test installs later leave it real, so writes still go out. */
const startSoon = setImmediate;

let waiting: Array<() => void> = [];

function startAll(): void {
  const starting = waiting;
  waiting = [];
  for (const start of starting) start();
}

/** Runs `write` at the end of this turn, after the writes queued before it; settles as what it returned does. */
export function atEndOfTurn(write: () => Promise<void> | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (waiting.length === 0) startSoon(startAll);
    waiting.push(() => {
      let writing: Promise<void> | undefined;
      try {
        writing = write();
      } catch (error) {
        reject(error);
        return;
      }
      if (writing === undefined) resolve();
      else writing.then(resolve, reject);
    });
  });
}

/** Starts every write still waiting for the end of the turn, now, in the order they came: before a refresh reads. */
export function startWaitingNow(): void {
  if (waiting.length > 0) startAll();
}
