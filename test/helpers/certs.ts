/**
 * Test certificates: a throwaway CA and leaf certificates made with the openssl command line
 * (Node can sign nothing itself), in a temp dir removed by `cleanup()`.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A key and certificate pair in PEM. */
export interface KeyPair {
  key: string;
  cert: string;
}

/** A CA that can issue leaf certificates for DNS names. */
export interface TestCa extends KeyPair {
  issue(names: string[]): Promise<KeyPair>;
  cleanup(): Promise<void>;
}

/** Creates a CA (EC P-256, one day). */
export async function createCa(): Promise<TestCa> {
  const dir = await mkdtemp(join(tmpdir(), 'sy-ca-'));
  const caKey = join(dir, 'ca.key');
  const caCert = join(dir, 'ca.crt');
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    caKey,
    '-out',
    caCert,
    '-days',
    '1',
    '-subj',
    '/CN=switchyard test CA',
  ]);
  let serial = 0;
  return {
    key: await readFile(caKey, 'utf8'),
    cert: await readFile(caCert, 'utf8'),
    async issue(names) {
      serial++;
      const key = join(dir, `leaf${serial}.key`);
      const csr = join(dir, `leaf${serial}.csr`);
      const cert = join(dir, `leaf${serial}.crt`);
      const ext = join(dir, `leaf${serial}.ext`);
      await writeFile(ext, `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}\n`);
      await run('openssl', [
        'req',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        key,
        '-out',
        csr,
        '-subj',
        `/CN=${names[0]}`,
      ]);
      await run('openssl', [
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        caCert,
        '-CAkey',
        caKey,
        '-set_serial',
        String(serial + 1000),
        '-days',
        '1',
        '-extfile',
        ext,
        '-out',
        cert,
      ]);
      return { key: await readFile(key, 'utf8'), cert: await readFile(cert, 'utf8') };
    },
    async cleanup() {
      await rm(dir, { recursive: true, force: true });
    },
  };
}
