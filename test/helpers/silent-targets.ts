/**
 * Listening sockets on loopback that never complete a handshake, for connect timeouts: a worker
 * thread listens with a backlog of 1 and then blocks its event loop, so nothing is ever accepted;
 * once the kernel's accept queue is full (filled here), further SYNs are dropped and a connect
 * just waits (no RST, as to a host that is down or firewalled). No network namespace or firewall
 * rule needed.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';

/** Silent ports; see the file comment. */
export class SilentTargets {
  readonly ports: number[];
  readonly #worker: Worker;
  readonly #wake: Int32Array;
  readonly #fillers: Socket[];

  private constructor(worker: Worker, wake: Int32Array, ports: number[]) {
    this.#worker = worker;
    this.#wake = wake;
    this.ports = ports;
    this.#fillers = [];
  }

  /** Starts `count` silent ports, their accept queues already full. */
  static async start(count: number): Promise<SilentTargets> {
    const wake = new Int32Array(new SharedArrayBuffer(4));
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       const { createServer } = require('node:net');
       const servers = [];
       for (let i = 0; i < workerData.count; i++) servers.push(createServer());
       let listening = 0;
       for (const s of servers) s.listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () => {
         if (++listening < servers.length) return;
         parentPort.postMessage(servers.map((x) => x.address().port));
         Atomics.wait(workerData.wake, 0, 0);
         for (const x of servers) x.close();
       });`,
      { eval: true, workerData: { count, wake } },
    );
    const [ports] = (await once(worker, 'message')) as [number[]];
    const silent = new SilentTargets(worker, wake, ports);
    for (const port of ports) await silent.#fill(port);
    return silent;
  }

  /** Connects until one connect hangs: the accept queue is then full. */
  async #fill(port: number): Promise<void> {
    for (let i = 0; i < 8; i++) {
      const socket = connect(port, '127.0.0.1');
      socket.on('error', () => {});
      this.#fillers.push(socket);
      const connected = await Promise.race([once(socket, 'connect').then(() => true), sleep(200).then(() => false)]);
      if (!connected) return;
    }
    throw new Error(`port ${port} kept accepting connections`);
  }

  /** Lets the worker close its servers and exit. */
  async close(): Promise<void> {
    for (const socket of this.#fillers) socket.destroy();
    Atomics.store(this.#wake, 0, 1);
    Atomics.notify(this.#wake, 0);
    await once(this.#worker, 'exit');
  }
}
