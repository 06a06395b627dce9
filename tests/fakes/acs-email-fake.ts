/**
 * A small in-memory stand-in for the Azure Communication Services Email REST API, for testing the ACS adapter with
 * the real @azure/communication-email client and any TokenCredential. It serves https on loopback with a
 * certificate it makes at start (the client refuses bearer tokens over plain http): give the client
 * `tlsOptions: { ca: fake.ca }`.
 *
 * - `POST /emails:send` answers 202 with an `Operation-Location` header and `{ id, status: "Running" }`. The
 *   `Operation-Id` request header (a UUID) names the operation; without one the fake makes one up. Sending the same
 *   operation id again does not deliver a second mail: by default it answers with the existing operation, or with
 *   409 when `duplicateOperation` is "conflict".
 * - `GET /emails/operations/{id}` answers `Running` for the first poll(s), then `Succeeded` (or `Failed` with an
 *   error, when sends are set to fail).
 *
 * Failure messages from the fake deliberately contain the recipient address, as real service messages can, so
 * tests can check the adapter does not pass them on.
 */
import { generateKeyPairSync, randomBytes, randomUUID, sign } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { serveFake } from "./serve";

export interface FakeEmail {
  readonly operationId: string;
  readonly senderAddress: string;
  readonly to: readonly string[];
  readonly cc: readonly string[];
  readonly bcc: readonly string[];
  readonly subject: string;
  readonly plainText?: string;
  readonly html?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

export type FakeOperationStatus = "Running" | "Succeeded" | "Failed";

export interface FakeOperation {
  readonly id: string;
  status: FakeOperationStatus;
  /** Status polls answered so far. */
  polls: number;
  readonly error?: { code: string; message: string };
  /** How many times a send with this operation id was accepted (1 = no duplicates). */
  submissions: number;
}

export interface FakeEmailRequest {
  readonly method: string;
  readonly path: string;
  readonly operationIdHeader?: string;
  readonly authorized: boolean;
  readonly status: number;
}

export interface AcsEmailFakeOptions {
  /** Polls answered "Running" before an operation reaches its final status. Default 1. */
  readonly runningPolls?: number;
  /** What a repeated Operation-Id gets: the existing operation (default) or a 409 conflict. */
  readonly duplicateOperation?: "same-operation" | "conflict";
}

export interface AcsEmailFake {
  /** Endpoint to give the client, e.g. `https://127.0.0.1:54321`. */
  readonly url: string;
  /** PEM certificate the fake serves; trust it with the client option `tlsOptions: { ca }`. */
  readonly ca: string;
  stop(): Promise<void>;
  /** Messages accepted for delivery (operations that did not fail), oldest first. */
  readonly delivered: readonly FakeEmail[];
  readonly operations: ReadonlyMap<string, FakeOperation>;
  readonly requests: readonly FakeEmailRequest[];
  /** Sends accepted from now on end `Failed` with this error code (false: they succeed again). */
  failSends(code: string | false): void;
  /**
   * The next send request is rejected outright with this HTTP status (e.g. 400, 429, 503); with `retryAfterSeconds`
   * the answer carries a `Retry-After` header (RFC 9110 §10.2.3), as ACS does when it throttles.
   */
  rejectNextSend(status: number, code?: string, retryAfterSeconds?: number): void;
  setDuplicateOperation(mode: "same-operation" | "conflict"): void;
  reset(): void;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** DER encoding, just enough for one self-signed certificate. */
const der = {
  length(n: number): Buffer {
    if (n < 0x80) return Buffer.from([n]);
    const bytes: number[] = [];
    for (let x = n; x > 0; x = Math.floor(x / 256)) bytes.unshift(x & 0xff);
    return Buffer.from([0x80 | bytes.length, ...bytes]);
  },
  tlv(tag: number, ...parts: Buffer[]): Buffer {
    const content = Buffer.concat(parts);
    return Buffer.concat([Buffer.from([tag]), der.length(content.length), content]);
  },
  seq: (...parts: Buffer[]) => der.tlv(0x30, ...parts),
  set: (...parts: Buffer[]) => der.tlv(0x31, ...parts),
  /** A non-negative INTEGER from big-endian bytes, in DER's minimal form (X.690 8.3.2: no leading 0x00 before a byte
   * below 0x80, which OpenSSL refuses as "illegal padding"; one 0x00 before a byte of 0x80 or more). */
  int(bytes: Buffer): Buffer {
    let start = 0;
    while (start < bytes.length - 1 && bytes[start] === 0 && bytes[start + 1]! < 0x80) start++;
    const minimal = bytes.subarray(start);
    return der.tlv(0x02, minimal[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), minimal]) : minimal);
  },
  bool: (v: boolean) => der.tlv(0x01, Buffer.from([v ? 0xff : 0])),
  octets: (bytes: Buffer) => der.tlv(0x04, bytes),
  utcTime: (d: Date) => der.tlv(0x17, Buffer.from(d.toISOString().replace(/[-:T]/g, "").slice(2, 14) + "Z")),
  oid(dotted: string): Buffer {
    const [a, b, ...rest] = dotted.split(".").map(Number);
    const out = [40 * a! + b!];
    for (const v of rest) {
      const group: number[] = [];
      for (let x = v; ; x = Math.floor(x / 128)) {
        group.unshift((x & 0x7f) | (group.length ? 0x80 : 0));
        if (x < 128) break;
      }
      out.push(...group);
    }
    return der.tlv(0x06, Buffer.from(out));
  },
};

/**
 * A self-signed P-256 certificate for 127.0.0.1 and localhost, valid for a day. `serial`: its serial number's bytes
 * (big-endian; the top bit is cleared to keep it positive), 16 random bytes unless given.
 */
export function selfSignedCertificate(options: { serial?: Buffer } = {}): { cert: string; key: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const ecdsaWithSha256 = der.seq(der.oid("1.2.840.10045.4.3.2"));
  const name = der.seq(der.set(der.seq(der.oid("2.5.4.3"), der.tlv(0x0c, Buffer.from("127.0.0.1")))));
  const subjectAltName = der.seq(der.tlv(0x87, Buffer.from([127, 0, 0, 1])), der.tlv(0x82, Buffer.from("localhost")));
  const extensions = der.tlv(
    0xa3,
    der.seq(
      der.seq(der.oid("2.5.29.19"), der.bool(true), der.octets(der.seq(der.bool(true)))), // basicConstraints: CA
      der.seq(der.oid("2.5.29.17"), der.octets(subjectAltName)),
    ),
  );
  // Random, so one in 256 begins with a zero byte followed by a byte below 0x80: der.int keeps that valid.
  const serial = Buffer.from(options.serial ?? randomBytes(16));
  serial[0] = serial[0]! & 0x7f;
  const now = Date.now();
  const tbs = der.seq(
    der.tlv(0xa0, der.int(Buffer.from([2]))), // v3
    der.int(serial),
    ecdsaWithSha256,
    name,
    der.seq(der.utcTime(new Date(now - 3_600_000)), der.utcTime(new Date(now + 86_400_000))),
    name,
    publicKey.export({ type: "spki", format: "der" }),
    extensions,
  );
  const signature = sign("sha256", tbs, privateKey);
  const certificate = der.seq(tbs, ecdsaWithSha256, der.tlv(0x03, Buffer.concat([Buffer.from([0]), signature])));
  const lines = certificate.toString("base64").match(/.{1,64}/g) ?? [];
  return {
    cert: `-----BEGIN CERTIFICATE-----\n${lines.join("\n")}\n-----END CERTIFICATE-----\n`,
    key: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function addresses(v: unknown, field: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new HttpError(400, "BadRequest", `recipients.${field} must be an array.`);
  return v.map((r) => {
    if (!isRecord(r) || typeof r.address !== "string" || !r.address.includes("@")) {
      throw new HttpError(400, "BadRequest", `Invalid email address format in recipients.${field}.`);
    }
    return r.address;
  });
}

function parseMessage(raw: string, operationId: string): FakeEmail {
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch {
    throw new HttpError(400, "BadRequest", "The request body is not valid JSON.");
  }
  if (!isRecord(body)) throw new HttpError(400, "BadRequest", "The request body must be an object.");
  const { senderAddress, content, recipients, headers } = body;
  if (typeof senderAddress !== "string" || !senderAddress.includes("@")) throw new HttpError(400, "BadRequest", "senderAddress is required.");
  if (!isRecord(content) || typeof content.subject !== "string") throw new HttpError(400, "BadRequest", "content.subject is required.");
  const plainText = typeof content.plainText === "string" ? content.plainText : undefined;
  const html = typeof content.html === "string" ? content.html : undefined;
  if (plainText === undefined && html === undefined) throw new HttpError(400, "BadRequest", "content needs plainText or html.");
  if (!isRecord(recipients)) throw new HttpError(400, "BadRequest", "recipients is required.");
  const to = addresses(recipients.to, "to");
  const cc = addresses(recipients.cc, "cc");
  const bcc = addresses(recipients.bcc, "bcc");
  if (to.length + cc.length + bcc.length === 0) throw new HttpError(400, "BadRequest", "At least one recipient is required.");
  return {
    operationId,
    senderAddress,
    to,
    cc,
    bcc,
    subject: content.subject,
    plainText,
    html,
    headers: isRecord(headers) ? (headers as Record<string, string>) : undefined,
  };
}

export async function startAcsEmailFake(options: AcsEmailFakeOptions = {}): Promise<AcsEmailFake> {
  const runningPolls = options.runningPolls ?? 1;
  let duplicateOperation = options.duplicateOperation ?? "same-operation";
  const delivered: FakeEmail[] = [];
  const operations = new Map<string, FakeOperation>();
  const requests: FakeEmailRequest[] = [];
  let failCode: string | false = false;
  let reject: { status: number; code: string; retryAfterSeconds?: number } | undefined;
  let baseUrl = "";

  const operationBody = (op: FakeOperation) => ({ id: op.id, status: op.status, ...(op.status === "Failed" && op.error ? { error: op.error } : {}) });

  function send(raw: string, operationIdHeader: string | undefined, apiVersion: string): { status: number; body: unknown; headers: Record<string, string> } {
    if (reject) {
      const { status, code, retryAfterSeconds } = reject;
      reject = undefined;
      let recipient = "the recipient";
      try {
        recipient = parseMessage(raw, "").to[0] ?? recipient;
      } catch {
        // a malformed body is rejected all the same
      }
      throw new HttpError(
        status,
        code,
        status === 429 ? "Too many requests." : `The request for ${recipient} was rejected.`,
        retryAfterSeconds === undefined ? {} : { "retry-after": String(retryAfterSeconds) },
      );
    }
    if (operationIdHeader !== undefined && !UUID.test(operationIdHeader)) {
      throw new HttpError(400, "InvalidOperationId", "Operation-Id must be a UUID.");
    }
    const id = (operationIdHeader ?? randomUUID()).toLowerCase();
    const location = `${baseUrl}/emails/operations/${id}?api-version=${encodeURIComponent(apiVersion)}`;
    const existing = operations.get(id);
    if (existing) {
      existing.submissions += 1;
      if (duplicateOperation === "conflict") throw new HttpError(409, "Conflict", `An operation with id ${id} already exists.`);
      return { status: 202, body: operationBody(existing), headers: { "operation-location": location } };
    }
    const message = parseMessage(raw, id);
    const op: FakeOperation = {
      id,
      status: "Running",
      polls: 0,
      submissions: 1,
      ...(failCode ? { error: { code: failCode, message: `Email to ${message.to.join(", ")} was dropped after several attempts to deliver.` } } : {}),
    };
    operations.set(id, op);
    if (!op.error) delivered.push(message);
    return { status: 202, body: operationBody(op), headers: { "operation-location": location } };
  }

  function poll(id: string): unknown {
    const op = operations.get(id.toLowerCase());
    if (!op) throw new HttpError(404, "NotFound", `Operation ${id} was not found.`);
    op.polls += 1;
    if (op.status === "Running" && op.polls > runningPolls) op.status = op.error ? "Failed" : "Succeeded";
    return operationBody(op);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", baseUrl);
    const method = req.method ?? "GET";
    const path = decodeURIComponent(url.pathname);
    const operationIdHeader = typeof req.headers["operation-id"] === "string" ? req.headers["operation-id"] : undefined;
    const authorized = /^Bearer \S+/.test(req.headers.authorization ?? "") || /^HMAC-SHA256 /.test(req.headers.authorization ?? "");
    const body = await readBody(req);

    const reply = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
      requests.push({ method, path, operationIdHeader, authorized, status });
      const text = JSON.stringify(payload);
      res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text), ...headers });
      res.end(text);
    };
    const replyError = (e: HttpError) => reply(e.status, { error: { code: e.code, message: e.message } }, { "x-ms-error-code": e.code, ...e.headers });

    try {
      if (!authorized) throw new HttpError(401, "Denied", "Denied by the resource provider.");
      const apiVersion = url.searchParams.get("api-version");
      if (!apiVersion) throw new HttpError(400, "MissingApiVersionParameter", "The api-version query parameter is required.");
      if (method === "POST" && path === "/emails:send") {
        const r = send(body, operationIdHeader, apiVersion);
        reply(r.status, r.body, r.headers);
        return;
      }
      const m = /^\/emails\/operations\/([^/]+)$/.exec(path);
      if (method === "GET" && m) {
        reply(200, poll(m[1]!));
        return;
      }
      throw new HttpError(404, "NotFound", "The requested resource was not found.");
    } catch (e) {
      replyError(e instanceof HttpError ? e : new HttpError(500, "InternalServerError", "The fake failed."));
    }
  }

  const tls = selfSignedCertificate();
  const served = await serveFake(handle, tls);
  baseUrl = served.url;

  return {
    url: baseUrl,
    ca: tls.cert,
    stop: served.stop,
    delivered,
    operations,
    requests,
    failSends: (code) => {
      failCode = code;
    },
    rejectNextSend: (status, code = status === 429 ? "TooManyRequests" : "BadRequest", retryAfterSeconds) => {
      reject = { status, code, ...(retryAfterSeconds === undefined ? {} : { retryAfterSeconds }) };
    },
    setDuplicateOperation: (mode) => {
      duplicateOperation = mode;
    },
    reset: () => {
      delivered.length = 0;
      operations.clear();
      requests.length = 0;
      failCode = false;
      reject = undefined;
      duplicateOperation = options.duplicateOperation ?? "same-operation";
    },
  };
}
