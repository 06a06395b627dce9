/**
 * One invocation, done the way the Node worker does it: build the host's invocation request, let the app's
 * programming model turn it into handler arguments, call the handler, let the model turn the result back.
 */
import { randomUUID } from "node:crypto";
import type { CoreApi, InvocationModel, Registration } from "./core-api";

export type RpcTypedData = { string?: string; json?: string; bytes?: Uint8Array; http?: Record<string, unknown> };

export interface InvocationRequest {
  inputData: Array<{ name: string; data: RpcTypedData }>;
  triggerMetadata: Record<string, RpcTypedData>;
}

export type FunctionLog = (entry: { functionName: string; invocationId: string; level: string; category: string; message: string }) => void;

export function triggerBinding(reg: Registration): { name: string; type: string; options: Record<string, unknown> } {
  for (const [name, b] of Object.entries(reg.metadata.bindings)) {
    if (/trigger$/i.test(b.type)) return { name, type: b.type, options: b };
  }
  throw new Error(`function ${reg.metadata.name} has no trigger binding`);
}

export class FunctionTimeoutError extends Error {
  constructor(name: string, ms: number) {
    super(`function ${name} did not finish within ${ms} ms (functionTimeout)`);
    this.name = "FunctionTimeoutError";
  }
}

export interface Invocation {
  readonly invocationId: string;
  readonly model: InvocationModel;
  /** Runs the handler and converts its result; rejects if the handler throws or times out. */
  run(): Promise<{ returnValue?: unknown; outputData?: unknown[] }>;
}

export function createInvocation(api: CoreApi, reg: Registration, request: InvocationRequest, log: FunctionLog, timeoutMs: number): Invocation {
  const model = api.programmingModel;
  if (!model) throw new Error("the app did not load @azure/functions (no programming model was set)");
  const invocationId = randomUUID();
  const functionName = reg.metadata.name;
  const coreCtx = {
    invocationId,
    request: { invocationId, functionId: functionName, ...request },
    metadata: reg.metadata,
    state: "invocation",
    log: (level: string, category: string, message: string) => log({ functionName, invocationId, level, category, message }),
  };
  const invocationModel = model.getInvocationModel(coreCtx);
  return {
    invocationId,
    model: invocationModel,
    run: async () => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new FunctionTimeoutError(functionName, timeoutMs)), timeoutMs);
        timer.unref();
      });
      try {
        const work = (async () => {
          const { context, inputs } = await invocationModel.getArguments();
          const result = await invocationModel.invokeFunction(context, inputs, reg.handler);
          return invocationModel.getResponse(context, result);
        })();
        return await Promise.race([work, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
