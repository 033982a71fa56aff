/**
 * A real HTTP server on a free loopback port that records every request (the alert-channel, ping
 * and ping-summary tests): method, url, headers and the whole body; answers with `answer`.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

export interface Received {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

export interface HttpRecorder {
  /** `http://127.0.0.1:<port>` */
  url: string;
  requests: Received[];
  stop: () => Promise<void>;
}

export async function startHttp(
  answer: (req: Received, res: ServerResponse) => void = (_r, res) => res.end('OK'),
): Promise<HttpRecorder> {
  const requests: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      requests.push(r);
      answer(r, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  assert.ok(typeof addr === 'object' && addr !== null);
  return {
    url: `http://127.0.0.1:${addr.port}`,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
