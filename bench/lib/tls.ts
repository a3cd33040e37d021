/**
 * What the TLS passthrough scenarios share between the proxies' configs: routes by server name,
 * and the throwaway certificate the TLS backend serves.
 */
import { isIP } from 'node:net';
import { join } from 'node:path';
import { exec } from './exec.ts';

/** One SNI route of a passthrough proxy: connections whose ClientHello names `serverName` go to `targetPort`. */
export interface SniRoute {
  /** Route, backend or upstream name in the proxy's config. */
  readonly name: string;
  readonly serverName: string;
  /** Port on loopback to forward to. */
  readonly targetPort: number;
}

/** A PEM certificate and its unencrypted key, as files. */
export interface CertFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

/**
 * Generates a self-signed ECDSA P-256 certificate for `serverName`, valid for one day, into `dir`
 * with the openssl CLI (Node can sign but not build an X.509 certificate). The name goes into the
 * subjectAltName as an IP address or a DNS name, whichever it is; wrk verifies neither.
 */
export async function selfSignedCert(dir: string, serverName: string): Promise<CertFiles> {
  const certFile = join(dir, 'tls-cert.pem');
  const keyFile = join(dir, 'tls-key.pem');
  const san = `${isIP(serverName) === 0 ? 'DNS' : 'IP'}:${serverName}`;
  const result = await exec('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-days',
    '1',
    '-subj',
    `/CN=${serverName}`,
    '-addext',
    `subjectAltName=${san}`,
    '-keyout',
    keyFile,
    '-out',
    certFile,
  ]);
  if (result.code !== 0) throw new Error(`openssl req failed (${result.code ?? 'not found'}): ${result.stderr.trim()}`);
  return { certFile, keyFile };
}
