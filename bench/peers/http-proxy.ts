/**
 * Peer `http-proxy`: node:http in front, the `http-proxy` package forwarding through a keep-alive
 * agent. How a Node team typically writes a reverse proxy; run by the HTTP scenarios as
 * `node bench/peers/http-proxy.ts LISTEN_PORT TARGET_PORT`.
 */
import { Agent, createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';

/** The part of http-proxy 1.x this script uses (the package ships no types). */
interface ProxyServer {
  web(req: IncomingMessage, res: ServerResponse): void;
  on(event: 'error', listener: (error: Error, req: IncomingMessage, res: ServerResponse) => void): void;
}
interface HttpProxyModule {
  createProxyServer(options: { target: string; agent: Agent }): ProxyServer;
}

const [listenPort, targetPort] = process.argv.slice(2).map(Number);
if (!(listenPort > 0 && targetPort > 0)) throw new Error('usage: http-proxy.ts LISTEN_PORT TARGET_PORT');

const httpProxy = createRequire(import.meta.url)('http-proxy') as HttpProxyModule;
// Without keepAlive every request would open a new upstream connection.
const agent = new Agent({ keepAlive: true, maxFreeSockets: 256 });
const proxy = httpProxy.createProxyServer({ target: `http://127.0.0.1:${targetPort}`, agent });
proxy.on('error', (_error, _req, res) => {
  if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
  res.end('bad gateway\n');
});

const server = createServer((req, res) => proxy.web(req, res));
// Node's 5 s default would close idle benchmark connections between runs.
server.keepAliveTimeout = 300_000;
server.listen(listenPort, '127.0.0.1');
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => process.exit(0));
