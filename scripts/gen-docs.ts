/**
 * `npm run docs`: regenerates docs/config.md and docs/errors.md.
 */
import { writeFile } from 'node:fs/promises';
import { renderConfigDoc, renderErrorsDoc } from '../src/config/docs.ts';

const root = new URL('../', import.meta.url);
await writeFile(new URL('docs/config.md', root), renderConfigDoc());
await writeFile(new URL('docs/errors.md', root), renderErrorsDoc());
process.stdout.write('wrote docs/config.md and docs/errors.md\n');
