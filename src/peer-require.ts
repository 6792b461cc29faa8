import { createRequire } from 'node:module';

/**
 * `require` from this package's own location, for the optional peers, in the ES module build (and under
 * vitest). The CommonJS build cannot hold `import.meta`: scripts/build.mjs replaces this file there by one that
 * exports the module's own `require`, which resolves from the same place.
 */
// @ts-ignore TS1343 in the CommonJS compile only, whose output of this file is replaced.
export const peerRequire: NodeJS.Require = createRequire(import.meta.url);
