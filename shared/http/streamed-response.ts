/**
 * Back-pressure for streamed response bodies.
 *
 * With `enableHttpStream`, @azure/functions 4.x writes a handler's response body into the Node response of its HTTP
 * proxy without looking at `write()`'s answer (Azure/azure-functions-nodejs-library#294): a body is read as fast as it
 * can be produced and buffered in the worker, however slowly the client reads, and a client that goes away is never
 * noticed. For a download that means the whole decrypted content can sit in memory, checks made while it streams come
 * too late, and "the bytes sent" cannot be known.
 *
 * This module finds the Node response the library answers an invocation with (Node's `http.server.request.start`
 * diagnostics channel names each request's response; the library's proxy requests carry the invocation id in
 * `x-ms-invocation-id`) and paces a body by it: the next chunk is taken from the body only while the response holds
 * less than `PACED_HIGH_WATER_BYTES` unsent, and the body is ended as soon as the response closes before it finished
 * (the client went away). Without such a response (another runtime, no streaming) a body passes through unpaced.
 */
import { channel } from "node:diagnostics_channel";
import type { IncomingMessage, ServerResponse } from "node:http";
import { Readable } from "node:stream";

/** At most this much of a paced body waits in the worker for the connection to take it (plus one chunk). */
export const PACED_HIGH_WATER_BYTES = 256 * 1024;

const INVOCATION_HEADER = "x-ms-invocation-id";
/** Where the process's one registry hangs on the channel (a registered symbol: the same in every copy of this module). */
const REGISTRY = Symbol.for("safedata.http.proxy-responses");

/**
 * Responses being written, by the invocation they answer; an entry leaves when its response closes. One registry, and
 * one subscriber, per process: the diagnostics channel is the process's, while this module may be loaded more than
 * once (a test runner loads it per test file, a host may reload the app). Subscribing per load added one more "close"
 * listener to every response per load, and kept every loaded copy alive.
 */
const responses: Map<string, ServerResponse> = (() => {
  const started = channel("http.server.request.start") as ReturnType<typeof channel> & { [REGISTRY]?: Map<string, ServerResponse> };
  const existing = started[REGISTRY];
  if (existing) return existing;
  const registry = new Map<string, ServerResponse>();
  started[REGISTRY] = registry;
  started.subscribe((message) => {
    const { request, response } = message as { request: IncomingMessage; response: ServerResponse };
    const id = request.headers[INVOCATION_HEADER];
    if (typeof id !== "string" || id === "") return;
    registry.set(id, response);
    response.once("close", () => {
      if (registry.get(id) === response) registry.delete(id);
    });
  });
  return registry;
})();

/** The Node response the library answers invocation `invocationId` with, while it is open (undefined elsewhere). */
export function proxyResponseOf(invocationId: string): ServerResponse | undefined {
  return responses.get(invocationId);
}

/** The client went away before the whole body was sent. */
export class ResponseClosedError extends Error {
  constructor() {
    super("the response was closed before the body was sent");
    this.name = "ResponseClosedError";
  }
}

/**
 * Resolves with true when `response` holds less than the high-water mark unsent, or with false when it closed first
 * (the caller tells a client that went away from one that had everything, see pacedBody).
 */
function room(response: ServerResponse): Promise<boolean> {
  if (response.destroyed || response.writableFinished) return Promise.resolve(false);
  if (response.writableLength < PACED_HIGH_WATER_BYTES) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = () => {
      response.off("drain", onDrain);
      response.off("close", onClose);
    };
    const onDrain = () => {
      done();
      resolve(true);
    };
    const onClose = () => {
      done();
      resolve(false);
    };
    response.on("drain", onDrain);
    response.on("close", onClose);
  });
}

/** The response's declared Content-Length, when it has one. */
function declaredLength(response: ServerResponse): number | undefined {
  const value = response.getHeader("content-length");
  const n = typeof value === "number" ? value : typeof value === "string" && /^\d+$/.test(value) ? Number(value) : NaN;
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * `body`, taken chunk by chunk only as fast as the response of invocation `invocationId` sends it. When that response
 * closes before the whole body was passed on, `body` is destroyed (its own clean-up runs) and the returned stream
 * ends with ResponseClosedError.
 *
 * A response with a Content-Length whose every declared byte was passed on is complete, even when it closes before the
 * library ends it: the client (the host, Azure's front end) has the whole message and may close its connection at once,
 * while the library still waits for the body's end. That is a sent answer, not a failed invocation: the returned
 * stream then simply ends.
 */
export function pacedBody(body: Readable, invocationId: string): Readable {
  const response = responses.get(invocationId);
  if (!response) return body;
  let passed = 0;
  const whole = () => {
    const declared = declaredLength(response);
    return declared !== undefined && passed >= declared;
  };
  const onClose = () => {
    if (!response.writableFinished && !whole()) body.destroy(new ResponseClosedError());
  };
  response.once("close", onClose);
  const it = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  return Readable.from(
    (async function* () {
      try {
        for (;;) {
          if (!(await room(response))) {
            if (whole()) return;
            throw new ResponseClosedError();
          }
          const next = await it.next();
          if (next.done) return;
          passed += next.value.length;
          yield next.value;
        }
      } finally {
        response.off("close", onClose);
        if (!body.destroyed) body.destroy();
      }
    })(),
    { objectMode: false, highWaterMark: 1 },
  );
}
