/**
 * A loopback HTTP proxy in front of an S3 server (moto) that injects the faults object stores
 * really show: 503 SlowDown, a connection reset in the middle of the response body, a response cut
 * short (Content-Length promises more than arrives, then FIN), and a response that stalls longer
 * than the client's idle timeout. Faults are queued with `inject` and hit the next matching
 * requests; everything else is forwarded unchanged (the Host header too, so signatures still match).
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { Socket } from 'node:net';

export type Fault = 'slowdown' | 'reset' | 'truncate' | 'slow';

export interface SeenRequest {
  method: string;
  url: string;
  fault: Fault | undefined;
  headers: Record<string, string | string[] | undefined>;
}

export interface FaultProxy {
  endpoint: string;
  /** Every request seen, in order, with the fault it got. */
  seen: SeenRequest[];
  /** The next `times` requests that match get `fault` (match: method and/or a url substring). */
  inject(fault: Fault, times: number, match?: { method?: string; url?: string; delayMs?: number }): void;
  /** Faults still queued. */
  pending(): number;
  stop(): Promise<void>;
}

interface Rule {
  fault: Fault;
  left: number;
  method: string | undefined;
  url: string | undefined;
  delayMs: number;
}

const SLOWDOWN =
  '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>FAULT</RequestId></Error>';

export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const target = new URL(upstream);
  const rules: Rule[] = [];
  const seen: SeenRequest[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();

  const take = (req: IncomingMessage): Rule | undefined => {
    const rule = rules.find(
      (r) =>
        r.left > 0 &&
        (r.method === undefined || r.method === req.method) &&
        (r.url === undefined || (req.url ?? '').includes(r.url)),
    );
    if (rule) rule.left--;
    return rule;
  };

  const server: Server = createServer((req, res) => {
    const rule = take(req);
    seen.push({
      method: req.method ?? '',
      url: req.url ?? '',
      fault: rule?.fault,
      headers: { ...req.headers },
    });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (rule?.fault === 'slowdown') {
        res.writeHead(503, {
          'content-type': 'application/xml',
          'content-length': Buffer.byteLength(SLOWDOWN),
        });
        res.end(SLOWDOWN);
        return;
      }
      const up = httpRequest(
        {
          host: target.hostname,
          port: target.port,
          method: req.method,
          path: req.url,
          headers: req.headers,
        },
        (upRes) => {
          const body: Buffer[] = [];
          upRes.on('data', (c: Buffer) => body.push(c));
          upRes.on('end', () => {
            const all = Buffer.concat(body);
            const headers = { ...upRes.headers };
            const send = (): void => {
              if (rule?.fault === 'reset' || rule?.fault === 'truncate') {
                // Promise the whole body, deliver half of it (at least one byte short).
                headers['content-length'] = String(Math.max(all.length, 2));
                delete headers['transfer-encoding'];
                res.writeHead(upRes.statusCode ?? 500, headers);
                res.write(all.subarray(0, Math.floor(all.length / 2)), () => {
                  if (rule.fault === 'reset') req.socket.resetAndDestroy();
                  else req.socket.end();
                });
                return;
              }
              res.writeHead(upRes.statusCode ?? 500, headers);
              res.end(all);
            };
            if (rule?.fault === 'slow') {
              const t = setTimeout(() => {
                timers.delete(t);
                send();
              }, rule.delayMs);
              timers.add(t);
            } else send();
          });
        },
      );
      up.on('error', () => req.socket.destroy());
      up.end(Buffer.concat(chunks));
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    seen,
    inject(fault, times, match = {}) {
      rules.push({
        fault,
        left: times,
        method: match.method,
        url: match.url,
        delayMs: match.delayMs ?? 5_000,
      });
    },
    pending: () => rules.reduce((n, r) => n + r.left, 0),
    async stop() {
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
