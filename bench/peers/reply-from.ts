/**
 * Peer `reply-from`: fastify with `@fastify/reply-from`, which forwards through an undici agent
 * (keep-alive pools). Run by the HTTP scenarios as
 * `node bench/peers/reply-from.ts LISTEN_PORT TARGET_PORT`.
 */
import replyFrom from '@fastify/reply-from';
import Fastify from 'fastify';

const [listenPort, targetPort] = process.argv.slice(2).map(Number);
if (!(listenPort > 0 && targetPort > 0)) throw new Error('usage: reply-from.ts LISTEN_PORT TARGET_PORT');

// Node's 5 s default would close idle benchmark connections between runs.
const app = Fastify({ logger: false, keepAliveTimeout: 300_000 });
await app.register(replyFrom, {
  base: `http://127.0.0.1:${targetPort}`,
  undici: { connections: 128, pipelining: 1, keepAliveTimeout: 300_000 },
});
/**
 * reply-from 12 copies an HTTP/1.1 upstream's response headers as they are, `Connection:
 * keep-alive` included, so a client that sent `Connection: close` is told the connection stays
 * open while node:http closes it: wrk then writes its next request into the closing socket (a read
 * error and a 400 for every other request in http-close). Dropping the hop-by-hop fields, as
 * RFC 9110 section 7.6.1 asks of a proxy, is the fix a user would apply.
 */
function dropHopByHop<T extends Record<string, unknown>>(headers: T): T {
  delete headers.connection;
  delete headers['keep-alive'];
  return headers;
}
const FROM_OPTIONS = { rewriteHeaders: dropHopByHop };

app.get('/*', (request, reply) => reply.from(request.url, FROM_OPTIONS));
await app.listen({ host: '127.0.0.1', port: listenPort });
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    app.close().finally(() => process.exit(0));
  });
}
