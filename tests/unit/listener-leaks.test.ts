/**
 * Process-wide hooks are installed once per process, however many times their module is loaded. Jest loads a module
 * afresh for every test file while Node's core objects (diagnostics channels, the module loader) are shared by the
 * whole worker process; a hook added per load piled up there: after ten test files every response the library's
 * stream proxy wrote got one more "close" listener per file (Node's MaxListenersExceededWarning, a thousand times in
 * a run) and every module lookup went through one more wrapper. The same holds for any host that reloads the app.
 */
import { describe, it, jest } from "@jest/globals";
import http from "node:http";
import Module from "node:module";
import type { AddressInfo } from "node:net";
import { expect } from "../helpers/expect";

type StreamedResponse = typeof import("../../shared/http/streamed-response");
type CoreApiModule = typeof import("../../dev/runtime/core-api");

function loadFresh<T>(path: string): T {
  let loaded: T | undefined;
  jest.isolateModules(() => {
    loaded = jest.requireActual<T>(path);
  });
  return loaded!;
}

describe("the stream proxy's response registry (shared/http/streamed-response.ts)", () => {
  it("adds one close listener per response, however many times the module was loaded", async () => {
    const copies = Array.from({ length: 12 }, () => loadFresh<StreamedResponse>("../../shared/http/streamed-response"));
    let listeners = -1;
    let seen: unknown;
    const server = http.createServer((_req, res) => {
      listeners = res.listenerCount("close");
      seen = copies[0]!.proxyResponseOf("inv-1");
      res.end("ok");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const baseline = await (async () => {
      const plain = http.createServer((_req, res) => {
        const n = res.listenerCount("close");
        res.end(String(n));
      });
      await new Promise<void>((r) => plain.listen(0, "127.0.0.1", r));
      const res = await fetch(`http://127.0.0.1:${(plain.address() as AddressInfo).port}/`);
      const n = Number(await res.text());
      await new Promise<void>((r) => plain.close(() => r()));
      return n;
    })();
    await (await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, { headers: { "x-ms-invocation-id": "inv-1" } })).text();
    await new Promise<void>((r) => server.close(() => r()));
    expect(listeners - baseline, "close listeners the registry added").toBeLessThanOrEqual(1);
    // Every copy of the module sees the response (one registry per process).
    expect(seen).toBeDefined();
  });
});

describe("the local runtime's module hook (dev/runtime/core-api.ts)", () => {
  it("wraps Node's module resolution once, however many times the module was loaded", () => {
    const resolver = () => (Module as unknown as { _resolveFilename: unknown })._resolveFilename;
    loadFresh<CoreApiModule>("../../dev/runtime/core-api").installCoreApi();
    const first = resolver();
    const api = loadFresh<CoreApiModule>("../../dev/runtime/core-api").installCoreApi();
    loadFresh<CoreApiModule>("../../dev/runtime/core-api").installCoreApi();
    expect(resolver()).toBe(first);
    // The newest load's API is the one the stand-in module gives.
    const latest = loadFresh<CoreApiModule>("../../dev/runtime/core-api").installCoreApi();
    expect(latest).not.toBe(api);
    const stub = (Module as unknown as { _cache: Record<string, { exports: unknown }> })._cache["/__safedata_local_runtime__/functions-core.js"];
    expect(stub?.exports).toBe(latest);
  });
});
