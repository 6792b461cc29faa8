// Builds dist/esm (import) and dist/cjs (require) from the same sources, each with its declarations.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';

const tsc = (...args) => execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', ...args], { stdio: 'inherit' });

rmSync('dist', { recursive: true, force: true });
tsc('-p', 'tsconfig.json');
tsc('-p', 'tsconfig.json', '--module', 'commonjs', '--moduleResolution', 'node10', '--outDir', 'dist/cjs', '--verbatimModuleSyntax', 'false');
mkdirSync('dist/cjs', { recursive: true });
writeFileSync('dist/cjs/package.json', `${JSON.stringify({ type: 'commonjs' })}\n`);
// src/peer-require.ts uses import.meta, which CommonJS cannot parse: there, the module's own require does the same.
const peerRequire = 'dist/cjs/peer-require.js';
if (!existsSync(peerRequire)) throw new Error(`${peerRequire} was not built: scripts/build.mjs must replace it`);
writeFileSync(peerRequire, '"use strict";\n// Written by scripts/build.mjs: require() from this package\'s own location, for the optional peers.\nexports.peerRequire = require;\n');
