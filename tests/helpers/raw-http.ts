/**
 * HTTP/1.1 over a bare TCP socket, for clients no HTTP library will imitate: one that stops sending its body halfway,
 * and one that stops reading the response. Each opens its own connection.
 */
import net from "node:net";

export interface RawExchange {
  /** Everything received so far (status line, headers, body). */
  received(): Buffer;
  /** Resolves when the connection is closed (by either side). */
  readonly closed: Promise<void>;
  /** Resolves once a whole response has arrived (or the connection closed). */
  readonly answered: Promise<void>;
  /** Resolves once the request has been written to the socket. */
  readonly sent: Promise<void>;
  /** Sends more of the body. */
  write(chunk: Buffer | string): Promise<void>;
  /** Stops reading: the peer's writes back up once the socket buffers are full. */
  pause(): void;
  resume(): void;
  destroy(): void;
}

/**
 * Sends `method path` with `headers` and then `body` (which may be shorter than its Content-Length: the rest never
 * comes), and keeps the connection open.
 */
export function rawRequest(base: string, method: string, path: string, headers: Record<string, string>, body: Buffer | string = ""): RawExchange {
  const url = new URL(base);
  const socket = net.connect(Number(url.port), url.hostname);
  const chunks: Buffer[] = [];
  let complete: () => void = () => undefined;
  const answered = new Promise<void>((resolve) => (complete = resolve));
  socket.on("data", (c: Buffer) => {
    chunks.push(c);
    if (isComplete(Buffer.concat(chunks))) complete();
  });
  socket.on("error", () => undefined);
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  void closed.then(() => complete());
  const head = [`${method} ${path} HTTP/1.1`, `Host: ${url.host}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), "", ""].join("\r\n");
  const sent = new Promise<void>((resolve, reject) => {
    socket.once("connect", () => socket.write(Buffer.concat([Buffer.from(head, "latin1"), Buffer.from(body)]), (err) => (err ? reject(err) : resolve())));
    socket.once("error", reject);
  });
  return {
    received: () => Buffer.concat(chunks),
    closed,
    answered,
    sent,
    write: (chunk) => new Promise<void>((resolve, reject) => socket.write(chunk, (err) => (err ? reject(err) : resolve()))),
    pause: () => socket.pause(),
    resume: () => socket.resume(),
    destroy: () => socket.destroy(),
  };
}

/** Whether `received` holds one whole response: headers, and a body framed by Content-Length or chunked. */
function isComplete(received: Buffer): boolean {
  const text = received.toString("latin1");
  const at = text.indexOf("\r\n\r\n");
  if (at < 0) return false;
  const head = text.slice(0, at);
  const length = /^content-length:\s*(\d+)/im.exec(head);
  if (length) return text.length - (at + 4) >= Number(length[1]);
  if (/^transfer-encoding:\s*chunked/im.test(head)) return text.endsWith("\r\n0\r\n\r\n");
  return false;
}

/** The status code of what was received, or undefined before a status line arrived. */
export function statusOf(received: Buffer): number | undefined {
  const m = /^HTTP\/1\.1 (\d{3})/.exec(received.subarray(0, 32).toString("latin1"));
  return m ? Number(m[1]) : undefined;
}

/** The body of one complete response, framed by Content-Length or chunked. */
export function bodyOf(received: Buffer): string {
  const text = received.toString("latin1");
  const at = text.indexOf("\r\n\r\n");
  if (at < 0) return "";
  const head = text.slice(0, at);
  let rest = text.slice(at + 4);
  if (!/^transfer-encoding:\s*chunked/im.test(head)) return Buffer.from(rest, "latin1").toString("utf8");
  let body = "";
  for (;;) {
    const eol = rest.indexOf("\r\n");
    const size = parseInt(rest.slice(0, eol), 16);
    if (!(size > 0)) break;
    body += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 2 + size + 2);
  }
  return Buffer.from(body, "latin1").toString("utf8");
}

/** Resolves with true once `p` settles, or with false after `ms`. */
export function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  return Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]);
}
