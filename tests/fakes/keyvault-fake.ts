/**
 * A small in-memory stand-in for the Key Vault secrets REST API, for testing the Key Vault adapter with the real
 * @azure/keyvault-secrets client over http on loopback. It speaks the parts the adapter uses, in the service's
 * shapes: the bearer challenge, set/get/list versions/delete secrets, get deleted secrets, and Key Vault's JSON
 * error body. Everything it stores can be inspected, so tests can assert what was written and how often.
 *
 * Client settings it needs: `allowInsecureConnection: true` (plain http) and
 * `disableChallengeResourceVerification: true` (the challenge names vault.azure.net, the host is 127.0.0.1).
 */
import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { serveFake } from "./serve";

export interface FakeSecretVersion {
  readonly version: string;
  readonly value: string;
  readonly contentType?: string;
  readonly tags?: Readonly<Record<string, string>>;
  enabled: boolean;
  /** Unix seconds, as the service reports them. */
  readonly created: number;
  updated: number;
}

export interface FakeDeletedSecret {
  readonly name: string;
  readonly versions: readonly FakeSecretVersion[];
  /** Unix seconds. */
  readonly deletedDate: number;
  readonly scheduledPurgeDate: number;
}

export interface FakeRequest {
  readonly method: string;
  /** Decoded path without the query, e.g. `/secrets/tenant-a-kek/0123...`. */
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  /** Whether it carried a bearer token (the SDK's first request to a host carries none, to get the challenge). */
  readonly authorized: boolean;
  readonly status: number;
}

export interface KeyVaultFakeOptions {
  /** Items per page of `GET /secrets/{name}/versions`; the service's default and maximum is 25. */
  readonly pageSize?: number;
  /** Directory tenant named in the challenge. */
  readonly directoryTenantId?: string;
  /** Soft-delete retention in days (7–90 in the service). */
  readonly retentionDays?: number;
  /** Time source for `created`/`updated`/`deletedDate` (the service reports whole seconds). Default: system time. */
  readonly clock?: () => Date;
}

export interface KeyVaultFake {
  /** Vault URI to give the client, e.g. `http://127.0.0.1:54321`. */
  readonly url: string;
  stop(): Promise<void>;
  /** Every request served, oldest first. */
  readonly requests: readonly FakeRequest[];
  /** Authorized requests matching a method and exact path (the challenge round trips are not counted). */
  count(method: string, path: string): number;
  clearRequests(): void;
  /** Active secret names. */
  secretNames(): string[];
  /** Versions of an active secret, oldest first (empty when there is none). */
  versions(name: string): readonly FakeSecretVersion[];
  deletedSecret(name: string): FakeDeletedSecret | undefined;
  /** Adds a version directly, bypassing the API (e.g. to plant a malformed value). Returns its version id. */
  seedVersion(name: string, value: string, extra?: { contentType?: string; tags?: Record<string, string> }): string;
  /** Enables or disables one version, as an operator could in the portal. */
  setEnabled(name: string, version: string, enabled: boolean): void;
  /** Makes the next `count` requests (of any kind, after authorization) fail with this status. */
  failNext(status: number, count?: number): void;
  /**
   * Holds the answers to authorized requests with this method and exact path until the returned function is called
   * (to order races). With `requests`, only that many requests are caught; later ones are answered at once.
   */
  hold(method: string, path: string, options?: { requests?: number }): () => void;
}

const API_VERSION_PARAM = "api-version";
const SECRET_NAME = /^[0-9a-zA-Z-]{1,127}$/;
const MAX_TAGS = 15;
const MAX_TAG_LENGTH = 256;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly innerCode?: string,
  ) {
    super(message);
  }
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

export async function startKeyVaultFake(options: KeyVaultFakeOptions = {}): Promise<KeyVaultFake> {
  const pageSize = Math.min(Math.max(options.pageSize ?? 25, 1), 25);
  const directoryTenantId = options.directoryTenantId ?? "00000000-0000-0000-0000-000000000000";
  const retentionDays = options.retentionDays ?? 90;
  const clock = options.clock ?? (() => new Date());
  const nowSeconds = () => Math.floor(clock().getTime() / 1000);
  const active = new Map<string, FakeSecretVersion[]>();
  const deleted = new Map<string, FakeDeletedSecret>();
  const requests: FakeRequest[] = [];
  let failures: { status: number; remaining: number } | undefined;
  const holds: Array<{ method: string; path: string; opened: Promise<void>; left: number }> = [];
  let baseUrl = "";

  const secretId = (name: string, version: string) => `${baseUrl}/secrets/${name}/${version}`;
  const attributes = (v: FakeSecretVersion) => ({
    enabled: v.enabled,
    created: v.created,
    updated: v.updated,
    recoveryLevel: "Recoverable",
    recoverableDays: retentionDays,
  });
  const bundle = (name: string, v: FakeSecretVersion) => ({
    value: v.value,
    id: secretId(name, v.version),
    ...(v.contentType !== undefined ? { contentType: v.contentType } : {}),
    ...(v.tags !== undefined ? { tags: v.tags } : {}),
    attributes: attributes(v),
  });
  const item = (name: string, v: FakeSecretVersion) => {
    const { value: _value, ...rest } = bundle(name, v);
    return rest;
  };
  const deletedBundle = (d: FakeDeletedSecret) => {
    const latest = d.versions[d.versions.length - 1]!;
    return {
      ...item(d.name, latest),
      recoveryId: `${baseUrl}/deletedsecrets/${d.name}`,
      deletedDate: d.deletedDate,
      scheduledPurgeDate: d.scheduledPurgeDate,
    };
  };
  const notFound = (name: string, version?: string) =>
    new HttpError(
      404,
      "SecretNotFound",
      version
        ? `A secret with (name/id) ${name}/${version} was not found in this key vault.`
        : `A secret with (name/id) ${name} was not found in this key vault.`,
    );

  function addVersion(name: string, value: string, extra: { contentType?: string; tags?: Record<string, string>; enabled?: boolean }): FakeSecretVersion {
    const t = nowSeconds();
    const v: FakeSecretVersion = {
      version: randomBytes(16).toString("hex"),
      value,
      contentType: extra.contentType,
      tags: extra.tags ? { ...extra.tags } : undefined,
      enabled: extra.enabled ?? true,
      created: t,
      updated: t,
    };
    const list = active.get(name) ?? [];
    list.push(v);
    active.set(name, list);
    return v;
  }

  function setSecret(name: string, raw: string): unknown {
    if (deleted.has(name)) {
      throw new HttpError(
        409,
        "Conflict",
        `Secret ${name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.`,
        "ObjectIsDeletedButRecoverable",
      );
    }
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch {
      throw new HttpError(400, "BadParameter", "The request body is not valid JSON.");
    }
    if (!isRecord(body) || typeof body.value !== "string") throw new HttpError(400, "BadParameter", "Property 'value' is required.");
    const contentType = body.contentType;
    if (contentType !== undefined && typeof contentType !== "string") throw new HttpError(400, "BadParameter", "Property 'contentType' must be a string.");
    let tags: Record<string, string> | undefined;
    if (body.tags !== undefined && body.tags !== null) {
      if (!isRecord(body.tags)) throw new HttpError(400, "BadParameter", "Property 'tags' must be an object.");
      const entries = Object.entries(body.tags);
      if (entries.length > MAX_TAGS) throw new HttpError(400, "BadParameter", `A secret can have at most ${MAX_TAGS} tags.`);
      tags = {};
      for (const [k, v] of entries) {
        if (typeof v !== "string" || k.length > MAX_TAG_LENGTH || v.length > MAX_TAG_LENGTH) {
          throw new HttpError(400, "BadParameter", "Tag names and values must be strings of at most 256 characters.");
        }
        tags[k] = v;
      }
    }
    const attrs = isRecord(body.attributes) ? body.attributes : {};
    const enabled = typeof attrs.enabled === "boolean" ? attrs.enabled : true;
    return bundle(name, addVersion(name, body.value, { contentType, tags, enabled }));
  }

  function getSecret(name: string, version: string): unknown {
    const list = active.get(name);
    if (!list || list.length === 0) throw notFound(name, version || undefined);
    const v = version ? list.find((x) => x.version === version) : list[list.length - 1];
    if (!v) throw notFound(name, version);
    if (!v.enabled) throw new HttpError(403, "Forbidden", "Operation get is not allowed on a disabled secret.", "SecretDisabled");
    return bundle(name, v);
  }

  function listVersions(name: string, query: Record<string, string>): unknown {
    const list = active.get(name) ?? [];
    const requested = Number(query.maxresults ?? pageSize);
    const size = Number.isInteger(requested) && requested >= 1 ? Math.min(requested, pageSize) : pageSize;
    const skip = Number(query.$skiptoken ?? 0);
    const start = Number.isInteger(skip) && skip >= 0 ? skip : 0;
    const page = list.slice(start, start + size).map((v) => item(name, v));
    const next = start + size;
    const nextLink =
      next < list.length
        ? `${baseUrl}/secrets/${name}/versions?${API_VERSION_PARAM}=${encodeURIComponent(query[API_VERSION_PARAM] ?? "")}&maxresults=${size}&$skiptoken=${next}`
        : null;
    return { value: page, nextLink };
  }

  function deleteSecret(name: string): unknown {
    const list = active.get(name);
    if (!list || list.length === 0) throw notFound(name);
    const t = nowSeconds();
    const d: FakeDeletedSecret = { name, versions: list, deletedDate: t, scheduledPurgeDate: t + retentionDays * 86_400 };
    active.delete(name);
    deleted.set(name, d);
    return deletedBundle(d);
  }

  function getDeleted(name: string): unknown {
    const d = deleted.get(name);
    if (!d) throw new HttpError(404, "SecretNotFound", `Deleted Secret not found: ${name}`);
    return deletedBundle(d);
  }

  function route(method: string, segments: string[], query: Record<string, string>, body: string): unknown {
    const [collection, name, third, ...rest] = segments;
    if (rest.length > 0 || name === undefined) throw new HttpError(404, "NotFound", "The requested resource was not found.");
    if (!SECRET_NAME.test(name)) throw new HttpError(400, "BadParameter", "The secret name is invalid.");
    if (collection === "secrets") {
      if (third === undefined) {
        if (method === "PUT") return setSecret(name, body);
        if (method === "DELETE") return deleteSecret(name);
        if (method === "GET") return getSecret(name, "");
      } else if (third === "versions" && method === "GET") {
        return listVersions(name, query);
      } else if (method === "GET") {
        return getSecret(name, third);
      }
    } else if (collection === "deletedsecrets" && third === undefined && method === "GET") {
      return getDeleted(name);
    }
    throw new HttpError(405, "MethodNotAllowed", "The requested method is not supported on this resource.");
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", baseUrl);
    const method = req.method ?? "GET";
    const query = Object.fromEntries(url.searchParams.entries());
    // Trailing slash: `GET /secrets/{name}/` is how the client asks for the latest version.
    const segments = url.pathname.split("/").filter((s) => s !== "").map(decodeURIComponent);
    const path = "/" + segments.join("/");
    const authorized = /^Bearer \S+/.test(req.headers.authorization ?? "");
    const body = await readBody(req);

    const send = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
      requests.push({ method, path, query, authorized, status });
      const text = payload === undefined ? "" : JSON.stringify(payload);
      const write = () => {
        res.writeHead(status, {
          "content-type": "application/json; charset=utf-8",
          "content-length": Buffer.byteLength(text),
          "x-ms-keyvault-service-version": "fake",
          ...headers,
        });
        res.end(text);
      };
      // A held request is answered as it was when it arrived, but only once released.
      const held = authorized ? holds.filter((h) => h.method === method && h.path === path && h.left > 0) : [];
      for (const h of held) h.left--;
      if (held.length === 0) write();
      else void Promise.all(held.map((h) => h.opened)).then(write);
    };
    const sendError = (e: HttpError) =>
      send(e.status, { error: { code: e.code, message: e.message, ...(e.innerCode ? { innererror: { code: e.innerCode } } : {}) } });

    if (!authorized) {
      send(
        401,
        { error: { code: "Unauthorized", message: "AKV10000: Request is missing a Bearer or PoP token." } },
        {
          "www-authenticate": `Bearer authorization="https://login.microsoftonline.com/${directoryTenantId}", resource="https://vault.azure.net"`,
        },
      );
      return;
    }
    if (!query[API_VERSION_PARAM]) {
      sendError(new HttpError(400, "BadParameter", "The 'api-version' query parameter is required."));
      return;
    }
    if (failures && failures.remaining > 0) {
      failures.remaining -= 1;
      sendError(new HttpError(failures.status, failures.status === 429 ? "Throttled" : "InternalServerError", "Injected failure."));
      return;
    }
    try {
      send(200, route(method, segments, query, body));
    } catch (e) {
      if (e instanceof HttpError) sendError(e);
      else sendError(new HttpError(500, "InternalServerError", "The fake failed."));
    }
  }

  const served = await serveFake(handle);
  baseUrl = served.url;

  return {
    url: baseUrl,
    stop: served.stop,
    hold: (method, path, options = {}) => {
      let release = () => undefined as void;
      const h = { method, path, opened: new Promise<void>((resolve) => (release = resolve)), left: options.requests ?? Infinity };
      holds.push(h);
      return () => {
        holds.splice(holds.indexOf(h), 1);
        release();
      };
    },
    requests,
    count: (method, path) => requests.filter((r) => r.authorized && r.method === method && r.path === path).length,
    clearRequests: () => {
      requests.length = 0;
    },
    secretNames: () => [...active.keys()],
    versions: (name) => [...(active.get(name) ?? [])],
    deletedSecret: (name) => deleted.get(name),
    seedVersion: (name, value, extra = {}) => addVersion(name, value, extra).version,
    setEnabled: (name, version, enabled) => {
      const v = active.get(name)?.find((x) => x.version === version);
      if (!v) throw new Error(`no version ${version} of ${name}`);
      v.enabled = enabled;
      v.updated = nowSeconds();
    },
    failNext: (status, count = 1) => {
      failures = { status, remaining: count };
    },
  };
}
