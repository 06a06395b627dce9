/**
 * Sends one webhook delivery over HTTPS (or, for local trials only, plain HTTP on the loopback interface) and
 * reports what happened, never the response body.
 *
 * The URL was checked when the tenant set it (a public host name); this adapter checks again where it matters, at
 * the connection: every address the name resolves to must be a public unicast address (no loopback, private,
 * link-local, carrier-grade NAT, multicast or reserved range, IPv4 or IPv6, IPv4-mapped included), so a host name
 * that later resolves into the service's own network (DNS rebinding) is refused. Redirects are not followed (a 3xx
 * is a failed attempt), the receiver has DELIVERY_TIMEOUT_MS to answer, and at most 64 KiB of its answer is read.
 */
import dns from "node:dns";
import http from "node:http";
import https from "node:https";
import type { LookupFunction } from "node:net";
import ipaddr from "ipaddr.js";
import { DELIVERY_TIMEOUT_MS } from "../domain/webhooks";

export interface WebhookRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
}

export type WebhookFailure = "timeout" | "blocked-address" | "dns" | "connection" | "tls" | "protocol";

export interface WebhookAttemptResult {
  /** The receiver's HTTP status, or null when no answer came. */
  status: number | null;
  /** Why no answer came (no details from the receiver: its words never reach logs or storage). */
  failure?: WebhookFailure;
  durationMs: number;
}

export interface WebhookSender {
  send(request: WebhookRequest): Promise<WebhookAttemptResult>;
}

const MAX_ANSWER_BYTES = 64 * 1024;

/** Is `address` one a webhook may connect to? Loopback only when allowed (local trials). */
export function isAllowedAddress(address: string, allowLoopback: boolean): boolean {
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    parsed = ipaddr.process(address);
  } catch {
    return false;
  }
  const range = parsed.range();
  return range === "unicast" || (allowLoopback && range === "loopback");
}

class BlockedAddressError extends Error {
  constructor() {
    super("the webhook host resolves to an address that is not public");
    this.name = "BlockedAddressError";
  }
}

export class HttpWebhookSender implements WebhookSender {
  constructor(private readonly opts: { allowLoopback: boolean; timeoutMs?: number }) {}

  /** Resolves like the OS does, then refuses the connection unless every address is allowed. */
  private readonly lookup: LookupFunction = (hostname, options, callback) => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, "", 0);
      const list = addresses as dns.LookupAddress[];
      if (list.length === 0 || !list.every((a) => isAllowedAddress(a.address, this.opts.allowLoopback))) {
        return callback(new BlockedAddressError(), "", 0);
      }
      if ((options as { all?: boolean }).all) return (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, list);
      callback(null, list[0]!.address, list[0]!.family);
    });
  };

  send(request: WebhookRequest): Promise<WebhookAttemptResult> {
    const started = Date.now();
    const url = new URL(request.url);
    const client = url.protocol === "https:" ? https : http;
    const timeoutMs = this.opts.timeoutMs ?? DELIVERY_TIMEOUT_MS;
    // An address written in the URL is connected to without a lookup: check it here.
    const literal = url.hostname.replace(/^\[|\]$/g, "");
    if (ipaddr.isValid(literal) && !isAllowedAddress(literal, this.opts.allowLoopback)) {
      return Promise.resolve({ status: null, failure: "blocked-address", durationMs: 0 });
    }
    return new Promise((resolve) => {
      let settled = false;
      const done = (r: Omit<WebhookAttemptResult, "durationMs">) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ ...r, durationMs: Date.now() - started });
      };
      const req = client.request(
        url,
        {
          method: "POST",
          headers: { ...request.headers, "content-type": "application/json", "content-length": String(Buffer.byteLength(request.body)) },
          lookup: this.lookup,
          agent: false,
        },
        (res) => {
          let seen = 0;
          res.on("data", (chunk: Buffer) => {
            seen += chunk.length;
            if (seen > MAX_ANSWER_BYTES) res.destroy();
          });
          const finish = () => done({ status: res.statusCode ?? null, ...(res.statusCode ? {} : { failure: "protocol" as const }) });
          res.on("end", finish);
          res.on("close", finish);
          res.on("error", finish);
        },
      );
      // One deadline for the whole exchange: connecting, sending, and the answer.
      const timer = setTimeout(() => {
        done({ status: null, failure: "timeout" });
        req.destroy();
      }, timeoutMs);
      req.on("error", (err: Error & { code?: string }) => {
        const failure: WebhookFailure =
          err instanceof BlockedAddressError
            ? "blocked-address"
            : err.code === "ENOTFOUND" || err.code === "EAI_AGAIN"
              ? "dns"
              : /CERT|SSL|TLS/i.test(err.code ?? "")
                ? "tls"
                : "connection";
        done({ status: null, failure });
      });
      req.end(request.body);
    });
  }
}
