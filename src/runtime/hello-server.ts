/**
 * The built-in hello server: a tiny HTTP upstream for the quick start and tests, so a first run
 * needs no server of its own. node:http is fine here: it is not on the proxy's data path.
 */
import { createServer, type Server } from 'node:http';

/** The body the hello server answers with. */
export const HELLO_BODY = 'hello from switchyard\n';

/** A started hello server; `close()` releases the port and its keep-alive sockets. */
export class HelloServer {
  readonly server: Server;
  host: string;
  port: number;

  constructor(host: string, port: number) {
    this.host = host;
    this.port = port;
    this.server = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': HELLO_BODY.length });
      res.end(req.method === 'HEAD' ? undefined : HELLO_BODY);
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, this.host, () => {
        this.server.removeListener('error', reject);
        const address = this.server.address();
        if (address !== null && typeof address === 'object') this.port = address.port;
        resolve();
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
