import http from "node:http";

/**
 * Starts an upload with node:http, sends `sendBytes` of body, then destroys the socket: a client that goes away
 * mid-upload. Resolves once the socket is closed.
 */
export function abortedUpload(url: string, init: { method?: string; headers?: Record<string, string>; sendBytes: number }): Promise<void> {
  return new Promise((resolve) => {
    const req = http.request(url, { method: init.method ?? "PUT", headers: init.headers });
    req.on("error", () => undefined);
    req.on("close", () => resolve());
    req.on("response", (res) => {
      res.resume();
    });
    const chunk = Buffer.alloc(64 * 1024, 0x41);
    let sent = 0;
    const pump = () => {
      while (sent < init.sendBytes) {
        sent += chunk.length;
        if (!req.write(chunk)) {
          req.once("drain", pump);
          return;
        }
      }
      // Give the bytes a moment on the wire, then vanish without finishing the body.
      setTimeout(() => req.destroy(), 50);
    };
    req.flushHeaders();
    pump();
  });
}

/**
 * Starts an upload with node:http, sends `sendBytes` of body, then stops sending but keeps the connection open: a
 * stalled client. Resolves with the service's answer (status and body), then closes the connection.
 */
export function stalledUpload(url: string, init: { headers: Record<string, string>; sendBytes: number }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: "PUT", headers: init.headers });
    req.on("error", reject);
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") });
        req.destroy();
      });
    });
    req.flushHeaders();
    req.write(Buffer.alloc(init.sendBytes, 0x41));
  });
}
