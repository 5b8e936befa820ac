#!/usr/bin/env node
// Runs the TypeScript source directly (Node ≥ 24 strips types) inside a checkout, and the build in
// dist/ when installed as a package (Node does not strip types under node_modules).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const source = new URL('../cli/main.ts', import.meta.url);
const useSource = existsSync(fileURLToPath(source)) && !fileURLToPath(source).includes('/node_modules/');
const { main } = await import(useSource ? source.href : new URL('../dist/cli/main.js', import.meta.url).href);
process.exitCode = await main(process.argv.slice(2));
