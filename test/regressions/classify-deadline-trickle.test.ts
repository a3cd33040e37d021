/**
 * Regression: the classify timeout was an idle timeout (`socket.setTimeout`), refreshed by every
 * read, so a client trickling a partial ClientHello or PROXY header one byte at a time held its
 * connection forever. `timeouts.classifyMs` is a deadline from accept.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { after, test } from 'node:test';
import { Switchyard } from '../../src/runtime/switchyard.ts';
import { assertNoLeaks, handleSnapshot } from '../helpers/leaks.ts';
import { captureLogs } from '../helpers/logs.ts';
import { closed, freePorts, startServer } from '../helpers/net.ts';

const baseline = handleSnapshot();

after(async () => {
  await assertNoLeaks(baseline);
});

/** Writes `bytes` one at a time every `everyMs` until they run out or the socket closes. */
async function trickle(socket: Socket, bytes: Buffer, everyMs: number): Promise<void> {
  for (let i = 0; i < bytes.length && !socket.destroyed; i++) {
    socket.write(bytes.subarray(i, i + 1));
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

test('a client trickling a ClientHello or a PROXY header is closed at the classify deadline', async () => {
  const upstream = await startServer(() => {});
  const [tlsPort, tcpPort] = await freePorts(2);
  const logs = captureLogs();
  const proxy = await Switchyard.start(
    {
      bind: '127.0.0.1',
      timeouts: { classifyMs: 500 },
      // A trusted peer makes every port wait for a possible PROXY header.
      proxyProtocol: { trustedCidrs: ['127.0.0.1/32'] },
      routes: [
        {
          name: 'sni',
          match: { ports: tlsPort, domains: ['a.example.test'] },
          action: { type: 'forward', mode: 'tls-passthrough', targets: [`127.0.0.1:${upstream.port}`] },
        },
        {
          name: 'tcp',
          match: { ports: tcpPort },
          action: { type: 'forward', targets: [`127.0.0.1:${upstream.port}`] },
        },
      ],
    },
    { logger: logs.logger },
  );
  try {
    // A TLS record header announcing a 16,000-byte ClientHello, then its body a byte at a time.
    const hello = Buffer.concat([Buffer.from([0x16, 3, 1, 0x3e, 0x80, 1, 0, 0x3e, 0x7c]), Buffer.alloc(60, 3)]);
    // A PROXY v1 line that never reaches its CRLF.
    const header = Buffer.from('PROXY TCP4 203.0.113.7 127.0.0.1 4000 5000');
    const tls = connect(tlsPort, '127.0.0.1');
    const tcp = connect(tcpPort, '127.0.0.1');
    tls.on('error', () => {});
    tcp.on('error', () => {});
    await Promise.all([once(tls, 'connect'), once(tcp, 'connect')]);
    const started = Date.now();
    // 100 ms between bytes: each read is well inside classifyMs, so an idle timeout never fires.
    const trickling = [trickle(tls, hello, 100), trickle(tcp, header, 100)];
    await Promise.all([closed(tls, 3000), closed(tcp, 3000)]);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 450 && elapsed < 2000, `closed after ${elapsed} ms`);
    await Promise.all(trickling);
    assert.equal(
      await proxy.metrics.value('switchyard_rejected_connections_total', { reason: 'SY_LSN_CLASSIFY_TIMEOUT' }),
      2,
    );
    const lines = logs.withCode('SY_LSN_CLASSIFY_TIMEOUT');
    assert.deepEqual(lines.map((l) => l.port).sort(), [tlsPort, tcpPort].sort());
    assert.equal(await proxy.metrics.value('switchyard_connections_total'), 0);
    assert.equal(upstream.sockets.size, 0, 'nothing was forwarded');
  } finally {
    await proxy.close();
    await upstream.close();
  }
});
