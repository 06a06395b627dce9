/**
 * A plain node:http client for the service: small JSON calls, a streamed PUT with back-pressure, and a GET that
 * records when the first body byte arrived. A fresh connection per request, as a separate client would have.
 */
import http from "node:http";
import { once } from "node:events";
import { performance } from "node:perf_hooks";

export interface JsonResponse {
  status: number;
  body: unknown;
  text: string;
}

export function requestJson(method: string, url: string, key: string, json?: unknown, headers: Record<string, string> = {}): Promise<JsonResponse> {
  const data = json === undefined ? undefined : Buffer.from(JSON.stringify(json));
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method,
      agent: false,
      headers: {
        authorization: `Bearer ${key}`,
        ...(data ? { "content-type": "application/json", "content-length": String(data.length) } : {}),
        ...headers,
      },
    });
    req.on("error", reject);
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let body: unknown = undefined;
        try {
          body = text ? JSON.parse(text) : undefined;
        } catch {
          // Not JSON; the caller has the text.
        }
        resolve({ status: res.statusCode ?? 0, body, text });
      });
    });
    req.end(data);
  });
}

export interface PutResult extends JsonResponse {
  /** From sending the request until the whole response arrived. */
  ms: number;
}

/** PUTs `size` bytes from `chunks`, writing only as fast as the server reads. */
export async function putStream(url: string, headers: Record<string, string>, size: number, chunks: Iterable<Buffer>): Promise<PutResult> {
  const started = performance.now();
  const req = http.request(url, { method: "PUT", agent: false, headers: { ...headers, "content-length": String(size) } });
  const response = new Promise<JsonResponse>((resolve, reject) => {
    req.on("error", reject);
    req.on("response", (res) => {
      const parts: Buffer[] = [];
      res.on("data", (c: Buffer) => parts.push(c));
      res.on("error", reject);
      res.on("end", () => {
        const text = Buffer.concat(parts).toString("utf8");
        let body: unknown = undefined;
        try {
          body = JSON.parse(text);
        } catch {
          // Not JSON; the caller has the text.
        }
        resolve({ status: res.statusCode ?? 0, body, text });
      });
    });
  });
  // An early answer (an error) ends the writing; the response says why.
  let answered = false;
  response.then(
    () => (answered = true),
    () => (answered = true),
  );
  for (const chunk of chunks) {
    if (answered || req.destroyed) break;
    if (!req.write(chunk)) await Promise.race([once(req, "drain"), response.catch(() => undefined)]);
  }
  if (!answered && !req.destroyed) req.end();
  const res = await response;
  return { ...res, ms: performance.now() - started };
}

export interface DownloadResult {
  status: number;
  /** From sending the request until the first body byte arrived. */
  ttfbMs: number;
  /** From sending the request until the body ended. */
  ms: number;
  bytes: number;
}

/** GETs `url`, hands every body chunk to `onChunk`, and times the first byte and the end. */
export function getStream(url: string, headers: Record<string, string>, onChunk: (chunk: Buffer) => void): Promise<DownloadResult> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let ttfbMs = -1;
    let bytes = 0;
    const req = http.request(url, { method: "GET", agent: false, headers });
    req.on("error", reject);
    req.on("response", (res) => {
      res.on("data", (c: Buffer) => {
        if (ttfbMs < 0) ttfbMs = performance.now() - started;
        bytes += c.length;
        onChunk(c);
      });
      res.on("error", reject);
      res.on("aborted", () => reject(new Error(`the response was aborted after ${bytes} bytes`)));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, ttfbMs, ms: performance.now() - started, bytes }));
    });
    req.end();
  });
}
