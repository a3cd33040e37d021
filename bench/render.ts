/**
 * Re-renders the generated section of docs/benchmarks.md from a results file, without running
 * anything: `node bench/render.ts [results.json]` (default bench/results/latest.json).
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { writeResultsSection } from './lib/render.ts';
import type { RunResults } from './lib/results.ts';

const file = process.argv[2] ?? fileURLToPath(new URL('./results/latest.json', import.meta.url));
const doc = fileURLToPath(new URL('../docs/benchmarks.md', import.meta.url));
const results = JSON.parse(await readFile(file, 'utf8')) as RunResults;
await writeResultsSection(doc, results);
process.stdout.write(`rendered ${file} into ${doc}\n`);
