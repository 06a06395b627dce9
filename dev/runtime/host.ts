/**
 * The local Functions host. It loads the app's entry point with a stand-in for `@azure/functions-core`, so it
 * sees the app's own `app.http/timer/storageQueue` registrations, and serves them:
 *
 * - HTTP on http://127.0.0.1:<port>/<routePrefix>/..., routes and methods as registered. With
 *   `app.setup({ enableHttpStream: true })` requests and responses are streamed through the library's own HTTP
 *   proxy, as in Azure, so bodies are never buffered here.
 * - Timers on their NCRONTAB schedules, with past-due detection (see timers.ts).
 * - Queue triggers polling the local queue service, with retries and poison queues (see queues.ts).
 * - Host admin endpoints like the real host's: `GET /admin/functions`, `POST /admin/functions/<name>` with
 *   `{"input": "..."}` runs any non-HTTP function at once (202; add `?wait=true` to wait for the outcome). Like the
 *   real host's, they need the host's master key in the `x-functions-key` header (401 without it).
 * - Limits like Azure's front end: a request whose function has not begun its answer within `requestTimeoutMs`
 *   (230 s, as in Azure) gets 504; a client that sends no byte of its body, or accepts no byte of the response, for
 *   the idle limit is disconnected (the app answers a stalled JSON or upload body with 408 itself, first). Requests
 *   reach the worker's stream proxy over connections of their own, with no pool that stalled requests could fill.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { pipeline } from "node:stream/promises";
import { BlobServiceClient } from "@azure/storage-blob";
import { QueueServiceClient } from "@azure/storage-queue";
import { azureCredential } from "../../shared/identity";
import { scrub } from "../../shared/observability";
import { installCoreApi, type CoreApi, type Registration } from "./core-api";
import { resolveBindingExpression, type HostConfig } from "./host-config";
import { createInvocation, triggerBinding, type FunctionLog, type InvocationRequest } from "./invoker";
import { QueueListener, type QueueMessageForFunction } from "./queues";
import { compileRoute, bestMatch, type CompiledRoute } from "./routing";
import { blobTimerStatusStore, TimerScheduler, type ScheduleStatus } from "./timers";

export interface HostLogLine {
  time: string;
  level: string;
  source: "host" | "function";
  functionName?: string;
  invocationId?: string;
  message: string;
}

export interface LocalHostOptions {
  /** Loads the app's entry point (which calls app.setup and app.http/timer/storageQueue). */
  load: () => unknown;
  config: HostConfig;
  /** App settings: connections for queue triggers and timer status, `%NAME%` binding expressions. */
  env: Record<string, string | undefined>;
  hostname?: string;
  port?: number;
  hostId?: string;
  enableTimers?: boolean;
  enableQueues?: boolean;
  /** How long a function may take to begin its answer before its caller gets 504. Default 230 s, as Azure's front end. */
  requestTimeoutMs?: number;
  /**
   * How long a client may go without accepting any of a response that is waiting for it, before it is disconnected.
   * A request body that stalls is cut off after twice as long (the app answers a stalled body with 408 itself, so this
   * is the backstop). Default 60 s; npm start uses UPLOAD_IDLE_SECONDS, the app's own idle limit.
   */
  idleTimeoutMs?: number;
  /**
   * The key the admin endpoints (`/admin/...`) require in `x-functions-key`, as the real host's master key. When
   * absent a random one is made (read it from `masterKey`), so the admin endpoints are never open.
   */
  masterKey?: string;
  log?: (line: HostLogLine) => void;
}

export interface FunctionSummary {
  name: string;
  trigger: "http" | "timer" | "queue";
  methods?: string[];
  route?: string;
  schedule?: string;
  queueName?: string;
  nextRun?: string;
}

interface HttpEntry {
  reg: Registration;
  route: CompiledRoute;
  methods: Set<string> | undefined;
  triggerName: string;
}

/** Azure's front end gives an HTTP function 230 s to respond (the load balancer's idle timeout). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 230_000;
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
/** How long an idle keep-alive connection stays open (Kestrel's default, as in the Functions host). */
export const KEEP_ALIVE_TIMEOUT_MS = 130_000;
/** The admin endpoints take `{"input": "..."}`: a body larger than this is refused. */
const MAX_ADMIN_BODY_BYTES = 64 * 1024;

/** One request being served, and the progress its client last made (see LocalFunctionsHost.checkClients). */
interface ClientWatch {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly startedAt: number;
  bytesIn: number;
  inAt: number;
  out: string;
  outAt: number;
  /** Ends the work behind the request (the proxied call to the worker) when the host gives up on it. */
  abort?: () => void;
}

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "trailers",
  "transfer-encoding",
  "upgrade",
  "x-ms-invocation-id",
]);

export class LocalFunctionsHost {
  private server: http.Server | undefined;
  private readonly httpEntries: HttpEntry[] = [];
  private readonly timers = new Map<string, TimerScheduler>();
  private readonly queueListeners = new Map<string, QueueListener>();
  private readonly registrationsByName = new Map<string, Registration>();
  private proxyUri: URL | undefined;
  // One connection per proxied request: a function that answers before reading the whole request body (a 413,
  // say) leaves unread bytes on its connection, which must never carry the next request. No pool limit: a fixed
  // maxSockets would let stalled requests make every other request (health, other tenants) wait for a free
  // connection. (Finite, though: with an infinite maxSockets Node sends "Connection: close", and the proxy then closes
  // at once after an early answer such as a 413, resetting the connection before the answer is read.)
  private readonly proxyAgent = new http.Agent({ keepAlive: false, maxSockets: Number.MAX_SAFE_INTEGER });
  private readonly watches = new Set<ClientWatch>();
  private watchTimer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Servers the library started (its HTTP stream proxy): bound to loopback, and closed with the host. */
  private readonly libraryServers: http.Server[] = [];
  private baseUrl = "";
  private readonly adminKey: string;

  private constructor(
    private readonly api: CoreApi,
    private readonly options: LocalHostOptions,
  ) {
    if (options.masterKey !== undefined && options.masterKey.length < 16) throw new Error("the host master key must be at least 16 characters");
    this.adminKey = options.masterKey ?? randomBytes(32).toString("base64url");
  }

  static async start(options: LocalHostOptions): Promise<LocalFunctionsHost> {
    const api = installCoreApi();
    const host = new LocalFunctionsHost(api, options);
    await host.boot();
    return host;
  }

  get url(): string {
    return this.baseUrl;
  }

  /** The key the admin endpoints require in `x-functions-key`. */
  get masterKey(): string {
    return this.adminKey;
  }

  /** Whether the request carries the master key in `x-functions-key` (compared in constant time). */
  private hasMasterKey(req: IncomingMessage): boolean {
    const sent = req.headers["x-functions-key"];
    if (typeof sent !== "string") return false;
    const digest = (v: string) => createHash("sha256").update(v, "utf8").digest();
    return timingSafeEqual(digest(sent), digest(this.adminKey));
  }

  /** `${url}/${routePrefix}`, e.g. http://127.0.0.1:7071/api */
  get apiUrl(): string {
    return `${this.baseUrl}/${this.options.config.routePrefix}`;
  }

  /** Host lines can carry error messages from the library or the platform: e-mail-shaped text is scrubbed here too. */
  private log(level: string, message: string, extra: Partial<HostLogLine> = {}): void {
    (this.options.log ?? defaultLog)({ time: new Date().toISOString(), level, source: "host", message: scrub(message), ...extra });
  }

  private readonly functionLog: FunctionLog = (e) => {
    (this.options.log ?? defaultLog)({
      time: new Date().toISOString(),
      level: e.level,
      source: e.category === "user" ? "function" : "host",
      functionName: e.functionName,
      invocationId: e.invocationId,
      message: scrub(e.message),
    });
  };

  private async boot(): Promise<void> {
    this.api.logSink = (level, category, message) => {
      if (level !== "debug" && level !== "trace") this.log(level, `[worker ${category}] ${message}`);
    };
    await this.options.load();
    if (!this.api.programmingModel) throw new Error("the entry point did not use @azure/functions (no programming model registered)");
    const registrations = this.api.registrations;
    if (registrations.length === 0) throw new Error("the entry point registered no functions");

    const { result: capabilities, servers } = await capturingServers(() => this.api.programmingModel!.getCapabilities({}));
    this.libraryServers.push(...servers);
    if (capabilities.HttpUri) this.proxyUri = new URL(capabilities.HttpUri);

    for (const reg of registrations) this.register(reg);
    await this.listen();
    if (this.options.enableTimers ?? true) await this.startTimers();
    if (this.options.enableQueues ?? true) this.startQueues();
  }

  private register(reg: Registration): void {
    const name = reg.metadata.name;
    const trigger = triggerBinding(reg);
    for (const [bindingName, b] of Object.entries(reg.metadata.bindings)) {
      if (b.direction === "in" && bindingName !== trigger.name) {
        throw new Error(`function ${name}: input binding '${b.type}' is not supported by the local runtime`);
      }
      if (b.direction === "out" && !(b.type === "http" && trigger.type.toLowerCase() === "httptrigger")) {
        throw new Error(`function ${name}: output binding '${b.type}' is not supported by the local runtime`);
      }
    }
    this.registrationsByName.set(name.toLowerCase(), reg);
    switch (trigger.type.toLowerCase()) {
      case "httptrigger": {
        const route = typeof trigger.options.route === "string" ? trigger.options.route : name;
        const methods = Array.isArray(trigger.options.methods) ? new Set((trigger.options.methods as string[]).map((m) => m.toUpperCase())) : undefined;
        this.httpEntries.push({ reg, route: compileRoute(route), methods, triggerName: trigger.name });
        break;
      }
      case "timertrigger":
        this.timers.set(
          name.toLowerCase(),
          new TimerScheduler(
            {
              name,
              schedule: resolveBindingExpression(String(trigger.options.schedule), this.options.env),
              runOnStartup: trigger.options.runOnStartup === true,
              useMonitor: trigger.options.useMonitor !== false,
            },
            this.timerStore(),
            (info) => this.invokeTimer(reg, trigger.name, info.isPastDue, info.status),
            (err) => this.log("error", `timer ${name} failed: ${(err as Error).message}`, { functionName: name }),
          ),
        );
        break;
      case "queuetrigger": {
        const queueName = resolveBindingExpression(String(trigger.options.queueName), this.options.env).toLowerCase();
        const queues = this.queueService(String(trigger.options.connection ?? "AzureWebJobsStorage"));
        this.queueListeners.set(
          name.toLowerCase(),
          new QueueListener(name, queues.getQueueClient(queueName), queues.getQueueClient(`${queueName}-poison`), this.options.config.queues, {
            invoke: (m) => this.invokeQueue(reg, trigger.name, m),
            log: (level, message) => this.log(level, message, { functionName: name }),
          }),
        );
        break;
      }
      default:
        throw new Error(`function ${name}: trigger '${trigger.type}' is not supported by the local runtime`);
    }
  }

  private timerStoreCache: ReturnType<typeof blobTimerStatusStore> | undefined;
  private timerStore() {
    if (!this.timerStoreCache) {
      const blobs = this.blobService("AzureWebJobsStorage");
      this.timerStoreCache = blobTimerStatusStore(blobs.getContainerClient("azure-webjobs-hosts"), this.options.hostId ?? "safedata-local");
    }
    return this.timerStoreCache;
  }

  private connection(name: string, kind: "blob" | "queue"): { connectionString?: string; uri?: string; clientId?: string } {
    const env = this.options.env;
    const cs = env[name];
    if (cs) return { connectionString: cs };
    const uri = env[`${name}__${kind}ServiceUri`] ?? (env[`${name}__accountName`] ? `https://${env[`${name}__accountName`]}.${kind}.core.windows.net` : undefined);
    if (!uri) throw new Error(`connection '${name}' is not configured: set ${name} or ${name}__${kind}ServiceUri`);
    return { uri, clientId: env[`${name}__clientId`] };
  }

  private queueService(connectionName: string): QueueServiceClient {
    const c = this.connection(connectionName, "queue");
    if (c.connectionString) return QueueServiceClient.fromConnectionString(c.connectionString);
    return new QueueServiceClient(c.uri!, azureCredential(c.clientId));
  }

  private blobService(connectionName: string): BlobServiceClient {
    const c = this.connection(connectionName, "blob");
    if (c.connectionString) return BlobServiceClient.fromConnectionString(c.connectionString);
    return new BlobServiceClient(c.uri!, azureCredential(c.clientId));
  }

  private async startTimers(): Promise<void> {
    if (this.timers.size === 0) return;
    await this.blobService("AzureWebJobsStorage").getContainerClient("azure-webjobs-hosts").createIfNotExists();
    for (const t of this.timers.values()) await t.start();
  }

  private startQueues(): void {
    for (const q of this.queueListeners.values()) q.start();
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inFlight.add(p);
    void p.then(
      () => this.inFlight.delete(p),
      () => this.inFlight.delete(p),
    );
    return p;
  }

  private async invokeTimer(reg: Registration, triggerName: string, isPastDue: boolean, status: ScheduleStatus): Promise<void> {
    const timerInfo = { Schedule: { AdjustForDST: true }, ScheduleStatus: status, IsPastDue: isPastDue };
    await this.invokeNonHttp(reg, { inputData: [{ name: triggerName, data: { json: JSON.stringify(timerInfo) } }], triggerMetadata: {} });
  }

  private async invokeQueue(reg: Registration, triggerName: string, m: QueueMessageForFunction): Promise<void> {
    const json = (v: unknown) => ({ json: JSON.stringify(v) });
    await this.invokeNonHttp(reg, {
      inputData: [{ name: triggerName, data: { string: m.text } }],
      triggerMetadata: {
        DequeueCount: json(m.dequeueCount),
        Id: { string: m.id },
        PopReceipt: { string: m.popReceipt },
        InsertionTime: json(m.insertionTime.toISOString()),
        ExpirationTime: json(m.expirationTime.toISOString()),
        NextVisibleTime: json(m.nextVisibleTime.toISOString()),
        QueueTrigger: { string: m.text },
      },
    });
  }

  private async invokeNonHttp(reg: Registration, request: InvocationRequest): Promise<void> {
    const invocation = createInvocation(this.api, reg, request, this.functionLog, this.options.config.functionTimeoutMs);
    const started = Date.now();
    this.log("information", `Executing '${reg.metadata.name}' (id ${invocation.invocationId})`, { functionName: reg.metadata.name, invocationId: invocation.invocationId });
    try {
      await this.track(invocation.run());
      this.log("information", `Executed '${reg.metadata.name}' (Succeeded, ${Date.now() - started} ms)`, {
        functionName: reg.metadata.name,
        invocationId: invocation.invocationId,
      });
    } catch (err) {
      this.log("error", `Executed '${reg.metadata.name}' (Failed, ${Date.now() - started} ms): ${(err as Error).message}`, {
        functionName: reg.metadata.name,
        invocationId: invocation.invocationId,
      });
      throw err;
    }
  }

  /** Runs a timer or queue function now, as `POST /admin/functions/<name>` does; resolves when it finishes. */
  async invoke(functionName: string, input?: string): Promise<void> {
    const reg = this.registrationsByName.get(functionName.toLowerCase());
    if (!reg) throw new Error(`no function named ${functionName}`);
    const trigger = triggerBinding(reg);
    const timer = this.timers.get(functionName.toLowerCase());
    if (timer) return timer.trigger(false);
    if (trigger.type.toLowerCase() === "queuetrigger") {
      const now = new Date();
      return this.invokeQueue(reg, trigger.name, {
        text: input ?? "",
        dequeueCount: 1,
        id: "admin-" + now.getTime(),
        popReceipt: "",
        insertionTime: now,
        expirationTime: new Date(now.getTime() + 7 * 86_400_000),
        nextVisibleTime: now,
      });
    }
    throw new Error(`function ${functionName} is triggered by HTTP; call its route instead`);
  }

  /** Runs a timer function now with isPastDue set, as after a missed schedule. */
  async invokeTimerPastDue(functionName: string): Promise<void> {
    const timer = this.timers.get(functionName.toLowerCase());
    if (!timer) throw new Error(`no timer function named ${functionName}`);
    await timer.trigger(true);
  }

  /** Makes queue listeners poll at once rather than after their back-off. */
  pokeQueues(): void {
    for (const q of this.queueListeners.values()) q.poke();
  }

  functions(): FunctionSummary[] {
    const out: FunctionSummary[] = [];
    for (const reg of this.registrationsByName.values()) {
      const t = triggerBinding(reg);
      const name = reg.metadata.name;
      switch (t.type.toLowerCase()) {
        case "httptrigger": {
          const e = this.httpEntries.find((h) => h.reg === reg)!;
          out.push({ name, trigger: "http", methods: e.methods ? [...e.methods] : ["*"], route: `/${this.options.config.routePrefix}/${e.route.template}` });
          break;
        }
        case "timertrigger":
          out.push({ name, trigger: "timer", schedule: String(t.options.schedule), nextRun: this.timers.get(name.toLowerCase())?.nextRun?.toISOString() });
          break;
        default:
          out.push({ name, trigger: "queue", queueName: String(t.options.queueName) });
      }
    }
    return out;
  }

  private get requestTimeoutMs(): number {
    return this.options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  }

  private get idleTimeoutMs(): number {
    return this.options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  }

  /** Follows a request until its exchange is over, so checkClients can end it when it stalls or takes too long. */
  private watch(req: IncomingMessage, res: ServerResponse): ClientWatch {
    const now = Date.now();
    const w: ClientWatch = { req, res, startedAt: now, bytesIn: req.socket.bytesRead, inAt: now, out: "", outAt: now };
    this.watches.add(w);
    res.once("close", () => this.watches.delete(w));
    if (!this.watchTimer) {
      const period = Math.max(50, Math.min(1000, Math.floor(Math.min(this.idleTimeoutMs, this.requestTimeoutMs) / 4)));
      this.watchTimer = setInterval(() => this.checkClients(), period);
      this.watchTimer.unref();
    }
    return w;
  }

  /**
   * Ends what must not wait any longer: a request whose function has not begun its answer within the request timeout
   * (504), a client that sends nothing of a body it has not finished while the host is ready to read it (twice the idle
   * limit: the app answers 408 first), and a client that accepts nothing of a response waiting for it (the idle limit).
   */
  private checkClients(): void {
    const now = Date.now();
    for (const w of this.watches) {
      const { req, res } = w;
      const socket = req.socket;
      if (socket.destroyed) {
        this.watches.delete(w);
        continue;
      }
      if (!res.headersSent && now - w.startedAt >= this.requestTimeoutMs) {
        this.answerTimeout(w);
        continue;
      }
      // Waiting for the client's body: it is not complete, and nothing (a busy function) holds it back.
      if (!req.complete && !req.isPaused() && socket.bytesRead === w.bytesIn) {
        if (now - w.inAt >= 2 * this.idleTimeoutMs) {
          this.log("warning", `${req.method} ${pathOnly(req.url)}: the client sent no byte of its body for ${2 * this.idleTimeoutMs} ms; disconnected`);
          this.disconnect(w);
          continue;
        }
      } else {
        w.bytesIn = socket.bytesRead;
        w.inAt = now;
      }
      // Waiting for the client to read: bytes are queued for it and none has left since last time.
      const queued = socket.writableLength + res.writableLength;
      const out = `${socket.bytesWritten}/${socket.writableLength}/${res.writableLength}`;
      if (res.headersSent && queued > 0 && out === w.out) {
        if (now - w.outAt >= this.idleTimeoutMs) {
          this.log("warning", `${req.method} ${pathOnly(req.url)}: the client read nothing of the response for ${this.idleTimeoutMs} ms; disconnected`);
          this.disconnect(w);
        }
      } else {
        w.out = out;
        w.outAt = now;
      }
    }
  }

  private answerTimeout(w: ClientWatch): void {
    this.watches.delete(w);
    const seconds = Math.round(this.requestTimeoutMs / 1000);
    this.log("warning", `${w.req.method} ${pathOnly(w.req.url)}: no answer began within ${seconds} s; answered 504`);
    w.res.statusCode = 504;
    w.res.setHeader("content-type", "text/plain; charset=utf-8");
    w.res.setHeader("connection", "close");
    w.res.end(`The function did not begin its answer within ${seconds} s (the host's request timeout, as Azure's front end has).\n`);
    w.abort?.();
  }

  private disconnect(w: ClientWatch): void {
    this.watches.delete(w);
    w.abort?.();
    w.res.destroy();
    w.req.socket.destroy();
  }

  private listen(): Promise<void> {
    const server = http.createServer({ requestTimeout: 0 }, (req, res) => {
      this.onRequest(req, res).catch((err: Error) => {
        this.log("error", `request handling failed: ${err.message}`);
        if (!res.headersSent) {
          res.statusCode = 500;
          res.end();
        } else {
          res.destroy();
        }
      });
    });
    // Idle keep-alive connections are kept as long as the Functions host keeps them (Kestrel: 130 s), not Node's 5 s: a
    // client reusing a pooled connection just as the server closed it got ECONNRESET on a busy machine.
    server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
    this.server = server;
    const hostname = this.options.hostname ?? "127.0.0.1";
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.options.port ?? 7071, hostname, () => {
        server.off("error", reject);
        const port = (server.address() as AddressInfo).port;
        this.baseUrl = `http://${hostname}:${port}`;
        resolve();
      });
    });
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const watch = this.watch(req, res);
    closeWhenAnsweredEarly(req, res, Math.min(LINGER_MS, this.idleTimeoutMs));
    const rawPath = (req.url ?? "/").split("?")[0]!;
    if (rawPath === "/admin" || rawPath.startsWith("/admin/")) return this.onAdmin(req, res, rawPath);
    const prefix = this.options.config.routePrefix;
    const prefixPath = prefix ? `/${prefix}` : "";
    if (prefix && rawPath !== prefixPath && !rawPath.toLowerCase().startsWith(prefixPath.toLowerCase() + "/")) {
      return hostNotFound(res);
    }
    // A segment whose percent-encoding is malformed (`%ff`, `%E0%A4%A`, a bare `%`) is matched as it was sent: the
    // function it reaches (or the app's catch-all route) answers it, as a problem+json 400 with a request id.
    const path = rawPath
      .slice(prefixPath.length)
      .split("/")
      .map((s) => decodeSegment(s) ?? s)
      .join("/");
    const method = (req.method ?? "GET").toUpperCase();
    const found = bestMatch(
      this.httpEntries.filter((e) => !e.methods || e.methods.has(method)),
      path,
    );
    if (!found) return hostNotFound(res);
    await this.track(this.invokeHttp(found.entry, found.params, req, res, watch));
  }

  private async invokeHttp(entry: HttpEntry, params: Record<string, string>, req: IncomingMessage, res: ServerResponse, watch: ClientWatch): Promise<void> {
    // Names a client chose ("__proto__", "constructor") are plain keys here: null-prototype objects, filled once per name.
    const headers: Record<string, string> = Object.create(null) as Record<string, string>;
    for (const [k, v] of Object.entries(req.headersDistinct)) if (v) headers[k] = v.join(", ");
    const url = new URL(req.url ?? "/", this.baseUrl);
    const query: Record<string, string> = Object.create(null) as Record<string, string>;
    for (const [k, v] of url.searchParams) query[k] ??= v;
    const triggerMetadata: InvocationRequest["triggerMetadata"] = {
      Headers: { json: JSON.stringify(headers) },
      Query: { json: JSON.stringify(query) },
    };
    for (const [k, v] of Object.entries(params)) triggerMetadata[k] = { string: v };

    if (this.proxyUri) {
      const invocation = createInvocation(
        this.api,
        entry.reg,
        { inputData: [{ name: entry.triggerName, data: { http: {} } }], triggerMetadata },
        this.functionLog,
        this.options.config.functionTimeoutMs,
      );
      const proxied = this.forwardToProxy(invocation.invocationId, req, res);
      watch.abort = () => proxied.abort();
      try {
        await invocation.run();
      } catch (err) {
        this.log("error", `function ${entry.reg.metadata.name} failed: ${(err as Error).message}`, {
          functionName: entry.reg.metadata.name,
          invocationId: invocation.invocationId,
        });
        // A response body that fails mid-stream fails the invocation after the response may have started: give its
        // headers a moment to arrive, so the client sees an aborted response rather than a 500 it cannot trust.
        const started = await Promise.race([proxied.responseStarted, new Promise<boolean>((r) => setTimeout(() => r(false), 200).unref())]);
        proxied.abort();
        if (!started && !res.headersSent) {
          res.statusCode = 500;
          res.end();
        } else if (!res.writableEnded) {
          // (A response the host ended itself, a 504, is left to finish.)
          res.destroy();
        }
        return;
      }
      await proxied.done;
      return;
    }

    // Without HTTP streaming the host buffers the request and response, as in Azure.
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const invocation = createInvocation(
      this.api,
      entry.reg,
      {
        inputData: [
          {
            name: entry.triggerName,
            data: { http: { method: req.method, url: url.toString(), headers, query, params, body: body.length > 0 ? { bytes: body } : undefined } },
          },
        ],
        triggerMetadata,
      },
      this.functionLog,
      this.options.config.functionTimeoutMs,
    );
    const response = await invocation.run().catch((err: Error) => {
      this.log("error", `function ${entry.reg.metadata.name} failed: ${err.message}`);
      return undefined;
    });
    const rpc = (response?.returnValue as { http?: { statusCode?: string; headers?: Record<string, string>; body?: { bytes?: Uint8Array; string?: string } } } | undefined)?.http;
    // The host answered already (504 after the request timeout).
    if (res.headersSent) return;
    if (!rpc) {
      res.statusCode = 500;
      res.end();
      return;
    }
    res.statusCode = Number(rpc.statusCode ?? 200);
    for (const [k, v] of Object.entries(rpc.headers ?? {})) if (!HOP_BY_HOP.has(k.toLowerCase())) res.setHeader(k, v);
    res.end(rpc.body?.bytes ? Buffer.from(rpc.body.bytes) : (rpc.body?.string ?? ""));
  }

  /**
   * Sends the client's request to the library's HTTP proxy, tagged with the invocation id, and relays the
   * proxy's response back. Both bodies are piped with back-pressure.
   */
  private forwardToProxy(
    invocationId: string,
    req: IncomingMessage,
    res: ServerResponse,
  ): { done: Promise<void>; responseStarted: Promise<boolean>; abort(): void } {
    const target = this.proxyUri!;
    const headers: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
    // A body the client framed in chunks is framed the same way on: Node chunks by itself only the methods it expects
    // a body on, so a chunked DELETE or OPTIONS would otherwise go out unframed (and its bytes read as a next request).
    if (req.headers["transfer-encoding"] !== undefined && req.headers["content-length"] === undefined) headers["transfer-encoding"] = "chunked";
    headers["x-ms-invocation-id"] = invocationId;
    headers["x-forwarded-host"] = new URL(this.baseUrl).host;
    headers["x-forwarded-proto"] = "http";

    const proxyReq = http.request({
      host: target.hostname === "localhost" ? "127.0.0.1" : target.hostname,
      port: target.port,
      method: req.method,
      path: req.url,
      headers,
      agent: this.proxyAgent,
    });
    // Headers go out at once, even before the first byte of the body (or with none of it ever coming): the function
    // starts and answers a stalled body itself (408), instead of never hearing of the request.
    proxyReq.flushHeaders();
    const done = new Promise<void>((resolve) => {
      proxyReq.on("response", (proxyRes) => {
        if (!req.complete) {
          // Answered before the client's body all came (413, 408, 401...): what is still to come is read and
          // discarded here (see closeWhenAnsweredEarly), never forwarded, and never taken as a next request.
          req.unpipe(proxyReq);
          req.resume();
        }
        if (res.headersSent) {
          // The host answered already (504 after the request timeout): this late answer goes nowhere.
          proxyRes.resume();
          proxyReq.destroy();
          resolve();
          return;
        }
        res.statusCode = proxyRes.statusCode ?? 500;
        for (const [k, v] of Object.entries(proxyRes.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) res.setHeader(k, v);
        pipeline(proxyRes, res).then(
          () => {
            // Answered before the request body was fully sent (e.g. 413): this connection must not be reused.
            if (!proxyReq.writableFinished) proxyReq.destroy();
            resolve();
          },
          () => {
            proxyReq.destroy();
            res.destroy();
            resolve();
          },
        );
      });
      proxyReq.on("error", () => {
        if (!res.headersSent) {
          res.statusCode = 502;
          res.end();
        } else if (!res.writableEnded) res.destroy();
        resolve();
      });
    });
    const responseStarted = new Promise<boolean>((resolve) => {
      proxyReq.once("response", () => resolve(true));
      proxyReq.once("close", () => resolve(false));
    });
    // A client that goes away mid-upload aborts the proxied request, so the function sees its body fail. (Not
    // pipeline(): when the proxied request ends early, after an early answer, it would destroy the client's request
    // and with it the connection the answer is still on its way through.)
    req.pipe(proxyReq);
    req.once("error", () => proxyReq.destroy());
    req.once("close", () => {
      if (!req.complete) proxyReq.destroy();
    });
    res.on("close", () => {
      if (!res.writableFinished) proxyReq.destroy();
    });
    return { done, responseStarted, abort: () => proxyReq.destroy() };
  }

  private async onAdmin(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const send = (status: number, body?: unknown): void => {
      if (res.headersSent) return; // answered already (504 after the request timeout)
      res.statusCode = status;
      if (body === undefined) {
        res.end();
        return;
      }
      res.setHeader("content-type", "application/json; charset=utf-8");
      res.end(JSON.stringify(body, null, 2));
    };
    if (!this.hasMasterKey(req)) {
      // As the real host: every admin endpoint needs the master key; nothing is read or run without it.
      res.setHeader("connection", "close");
      return send(401, { error: "send the host's master key in the x-functions-key header (npm start prints how)" });
    }
    if (req.method === "GET" && path === "/admin/host/status") return send(200, { state: "Running", functions: this.registrationsByName.size });
    if (req.method === "GET" && path === "/admin/functions") return send(200, this.functions());
    const m = /^\/admin\/functions\/([^/]+)$/.exec(path);
    if (req.method === "POST" && m) {
      const name = decodeSegment(m[1]!);
      if (name === undefined) return send(400, { error: "the function name in the path has malformed percent-encoding (RFC 3986 §2.1)" });
      const reg = this.registrationsByName.get(name.toLowerCase());
      if (!reg) return send(404, { error: `no function named ${name}` });
      const chunks = await readLimited(req, MAX_ADMIN_BODY_BYTES);
      if (chunks === undefined) return send(413, { error: `the body may be at most ${MAX_ADMIN_BODY_BYTES} bytes` });
      let input: string | undefined;
      if (chunks.length > 0) {
        try {
          const parsed = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { input?: unknown };
          input = parsed.input === undefined ? undefined : typeof parsed.input === "string" ? parsed.input : JSON.stringify(parsed.input);
        } catch {
          return send(400, { error: 'the body must be JSON like {"input": "..."}' });
        }
      }
      if (triggerBinding(reg).type.toLowerCase() === "httptrigger") return send(400, { error: `${name} is an HTTP function; call its route` });
      const run = this.invoke(name, input);
      if (new URL(req.url ?? "/", this.baseUrl).searchParams.get("wait") === "true") {
        const started = Date.now();
        try {
          await run;
          return send(200, { function: name, status: "Succeeded", durationMs: Date.now() - started });
        } catch (err) {
          return send(200, { function: name, status: "Failed", durationMs: Date.now() - started, error: (err as Error).message });
        }
      }
      run.catch(() => undefined);
      return send(202);
    }
    return send(404, { error: "unknown admin endpoint" });
  }

  async stop(graceMs = 10_000): Promise<void> {
    clearInterval(this.watchTimer);
    const server = this.server;
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    for (const t of this.timers.values()) await t.stop();
    await Promise.all([...this.queueListeners.values()].map((q) => q.stop()));
    const grace = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
    await Promise.race([Promise.allSettled([...this.inFlight]), grace]);
    server?.closeAllConnections();
    await closed;
    this.proxyAgent.destroy();
    await Promise.all(
      this.libraryServers.map((s) => {
        s.closeAllConnections();
        return new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve()));
      }),
    );
  }
}

/**
 * Runs `fn` while recording every HTTP server created, and binds them to 127.0.0.1. The library's stream proxy
 * (`setupHttpProxy` in @azure/functions) listens on every interface and is never closed; on a developer's machine it
 * must not be reachable from the network, and a host that stops must leave no server behind.
 */
async function capturingServers<T>(fn: () => Promise<T>): Promise<{ result: T; servers: http.Server[] }> {
  const servers: http.Server[] = [];
  const createServer = http.createServer;
  http.createServer = ((...args: Parameters<typeof http.createServer>) => {
    const server = createServer(...args);
    servers.push(server);
    const listen = server.listen.bind(server) as (...a: unknown[]) => http.Server;
    // The library calls listen(callback) and listen(port, callback); give both the loopback host.
    server.listen = ((...a: unknown[]) => {
      if (typeof a[0] === "function") return listen(0, "127.0.0.1", a[0]);
      if (typeof a[0] === "number" && (typeof a[1] === "function" || a[1] === undefined)) return listen(a[0], "127.0.0.1", a[1]);
      return listen(...a);
    }) as typeof server.listen;
    return server;
  }) as typeof http.createServer;
  try {
    return { result: await fn(), servers };
  } finally {
    http.createServer = createServer;
  }
}

/**
 * The body of `req` when it is at most `limit` bytes, else undefined: from then on the rest is read and discarded
 * (never destroyed: that would reset the connection the answer goes out on).
 */
function readLimited(req: IncomingMessage, limit: number): Promise<Buffer[] | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.off("data", onData);
        req.off("end", onEnd);
        req.off("error", onError);
        req.resume();
        resolve(undefined);
        return;
      }
      chunks.push(c);
    };
    const onEnd = () => resolve(chunks);
    const onError = (err: Error) => reject(err);
    req.on("data", onData);
    req.once("end", onEnd);
    req.once("error", onError);
  });
}

/** How long, at most, the host keeps reading what a client still sends after answering it early (see below). */
const LINGER_MS = 5_000;

/**
 * An answer that begins before the client's request body has all arrived (a 413 or 408 from the function, the host's
 * 404, 401, 400, 504 or 502, given without reading it) closes the connection: it says `Connection: close` (RFC 9112
 * §9.6), since the rest of the body must never be read as a next request and a stalled body never comes. Closing at
 * once while the client is still sending would make the client's TCP stack reset the connection and drop the answer
 * before it is read (RFC 9112 §9.6 on closing while the client sends), so after the answer the host shuts its sending
 * side and keeps reading, and discarding, what the client still sends until it stops, for at most `lingerMs`.
 */
function closeWhenAnsweredEarly(req: IncomingMessage, res: ServerResponse, lingerMs: number): void {
  const writeHead = res.writeHead;
  res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
    if (!req.complete && !this.headersSent) {
      this.setHeader("connection", "close");
      lingerBeforeClosing(req, lingerMs);
    }
    return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
  } as typeof res.writeHead;
}

/**
 * Node's server ends a `Connection: close` exchange with `socket.destroySoon()`: destroyed as soon as the answer is
 * written. For this socket, that becomes: send the answer and FIN, discard what comes in, destroy when the client has
 * finished (its FIN) or after `lingerMs`.
 */
function lingerBeforeClosing(req: IncomingMessage, lingerMs: number): void {
  const socket = req.socket as IncomingMessage["socket"] & { destroySoon?: () => void };
  socket.destroySoon = function (this: typeof socket) {
    if (this.writable) this.end();
    const timer = setTimeout(() => this.destroy(), lingerMs);
    timer.unref();
    this.once("close", () => clearTimeout(timer));
    if (this.readableEnded) this.destroy();
    else this.once("end", () => this.destroy());
    req.resume();
    this.resume();
  };
}

/** One path segment percent-decoded (RFC 3986 §2.1), or undefined when its encoding is malformed or not UTF-8. */
function decodeSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

/** The path of a request URL without its query (which can carry anything), for log lines. */
function pathOnly(url: string | undefined): string {
  return (url ?? "/").split("?")[0]!.slice(0, 200);
}

function hostNotFound(res: ServerResponse): void {
  res.statusCode = 404;
  res.end();
}

function defaultLog(line: HostLogLine): void {
  const who = line.functionName ? ` [${line.functionName}]` : "";
  const out = `[${line.time}]${who} ${line.message}`;
  if (line.level === "error" || line.level === "critical") console.error(out);
  else console.log(out);
}
