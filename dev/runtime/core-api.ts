/**
 * A stand-in for `@azure/functions-core`, the module the Azure Functions Node worker injects into the app.
 * `@azure/functions` loads it with a plain `require`; when it is found, every `app.http/timer/storageQueue`
 * call arrives here as `registerFunction(metadata, handler)` with the same binding metadata the real host gets,
 * and `app.setup()` hands over the programming model that turns host data into HttpRequest, Timer, etc.
 * So the local runtime serves exactly the app's own registrations, converted by the library itself.
 */
import Module from "node:module";

export interface BindingInfo {
  type: string;
  direction: "in" | "out" | "inout";
  name?: string;
  [option: string]: unknown;
}

export interface FunctionMetadata {
  name: string;
  bindings: Record<string, BindingInfo>;
  retryOptions?: unknown;
}

export type FunctionCallback = (...args: unknown[]) => unknown;

export interface Registration {
  readonly metadata: FunctionMetadata;
  readonly handler: FunctionCallback;
}

/** What the library's programming model offers the host (see @azure/functions ProgrammingModel). */
export interface ProgrammingModel {
  name: string;
  version: string;
  getInvocationModel(coreCtx: unknown): InvocationModel;
  getCapabilities(capabilities: Record<string, string>): Promise<Record<string, string>>;
}

export interface InvocationModel {
  getArguments(): Promise<{ context: unknown; inputs: unknown[] }>;
  invokeFunction(context: unknown, inputs: unknown[], handler: FunctionCallback): Promise<unknown>;
  getResponse(context: unknown, result: unknown): Promise<{ returnValue?: unknown; outputData?: unknown[] }>;
}

export type LogSink = (level: string, category: string, message: string) => void;

interface HookEntry {
  name: string;
  callback: (ctx: unknown) => unknown;
}

export class CoreApi {
  readonly registrations: Registration[] = [];
  readonly hooks: HookEntry[] = [];
  programmingModel: ProgrammingModel | undefined;
  logSink: LogSink = () => undefined;

  // The members below are what @azure/functions calls.
  registerFunction = (metadata: FunctionMetadata, handler: FunctionCallback) => {
    if (this.registrations.some((r) => r.metadata.name.toLowerCase() === metadata.name.toLowerCase())) {
      throw new Error(`A function with the name "${metadata.name}" has already been registered.`);
    }
    const registration = { metadata, handler };
    this.registrations.push(registration);
    return { dispose: () => removeFrom(this.registrations, registration) };
  };

  setProgrammingModel = (model: ProgrammingModel) => {
    this.programmingModel = model;
  };

  getProgrammingModel = () => this.programmingModel;

  registerHook = (name: string, callback: (ctx: unknown) => unknown) => {
    const entry = { name, callback };
    this.hooks.push(entry);
    return { dispose: () => removeFrom(this.hooks, entry) };
  };

  log = (level: string, category: string, message: string) => this.logSink(level, category, message);
}

/** Removes `item` once; disposing twice does nothing (indexOf -1 would otherwise remove the last item). */
function removeFrom<T>(list: T[], item: T): void {
  const i = list.indexOf(item);
  if (i >= 0) list.splice(i, 1);
}

const CORE_MODULE = "@azure/functions-core";
const STUB_FILENAME = "/__safedata_local_runtime__/functions-core.js";
let installed: CoreApi | undefined;

type ResolveFilename = (request: string, ...rest: unknown[]) => string;
/** Marks the process's one wrapper of Node's resolver (a registered symbol: the same in every copy of this module). */
const HOOKED = Symbol.for("safedata.local-runtime.functions-core-hook");

/**
 * Makes `require("@azure/functions-core")` return this process's CoreApi. Must run before the app's entry
 * point first calls `app.*` (the library looks the module up once, lazily). Idempotent.
 */
export function installCoreApi(): CoreApi {
  if (installed) return installed;
  const api = new CoreApi();
  const mod = Module as unknown as { _resolveFilename: ResolveFilename & { [HOOKED]?: true }; _cache: Record<string, unknown> };
  // Node's loader is the process's, while this module may be loaded more than once (a test runner loads it per test
  // file): the resolver is wrapped once per process, and a later load only points the stand-in at its own CoreApi.
  if (!mod._resolveFilename[HOOKED]) {
    const original = mod._resolveFilename;
    const hooked = function (this: unknown, request: string, ...rest: unknown[]) {
      if (request === CORE_MODULE) return STUB_FILENAME;
      return original.call(this, request, ...rest);
    } as ResolveFilename & { [HOOKED]?: true };
    hooked[HOOKED] = true;
    mod._resolveFilename = hooked;
  }
  const stub = new Module(STUB_FILENAME);
  stub.filename = STUB_FILENAME;
  stub.loaded = true;
  stub.exports = api;
  mod._cache[STUB_FILENAME] = stub;
  installed = api;
  return api;
}
