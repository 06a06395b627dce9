/**
 * The infra tests read the ARM template the Bicep compiler made (infra/compiled/main.json, committed and kept up to
 * date by scripts/build-infra.sh; bicep-cli.test.ts fails when it is stale), never the Bicep text.
 *
 * `deploy(parameters)` plays a deployment of that template the way Azure Resource Manager would: it binds and
 * validates parameters (type, allowed values, min/max, length) at every level, evaluates variables, conditions,
 * copy loops, names, resource ids, dependencies and every property, deploys each module's nested template with
 * the values its caller passes, and answers `reference(...)` with the module's outputs or the resource's declared
 * properties plus what Azure adds at runtime (./azure-model.ts). The result is every resource as Azure would be
 * asked to create it, with concrete values, so the tests compare values instead of reading expressions.
 *
 * It is a model of ARM for this template, not all of ARM: a function, a reference or a template feature it does not
 * model throws, naming the expression.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { ArmExpressionError, eager, evaluateExpr, isExpression, isObject, parseExpression, type ArmFunction, type Expr, type Json, type JsonObject } from "./arm";
import { SUBSCRIPTION_ID, TENANT_ID, runtimeProperties, uuidFrom } from "./azure-model";

export const REPO = resolve(__dirname, "..", "..");
export const COMPILED = "infra/compiled/main.json";

export const readRepoFile = (path: string): string => readFileSync(join(REPO, path), "utf8");

export interface ParameterDecl {
  readonly type: string;
  readonly defaultValue?: Json;
  readonly allowedValues?: Json[];
  readonly minValue?: number;
  readonly maxValue?: number;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly metadata?: JsonObject;
}

export interface Template {
  readonly $schema: string;
  readonly parameters?: Readonly<Record<string, ParameterDecl>>;
  readonly variables?: JsonObject;
  readonly resources: readonly JsonObject[];
  readonly outputs?: Readonly<Record<string, { type: string; value: Json; condition?: Json }>>;
}

let compiledCache: { text: string; template: Template } | undefined;
/** The committed compiled template, as text and parsed. */
export function compiled(): { text: string; template: Template } {
  if (!compiledCache) {
    const text = readRepoFile(COMPILED);
    compiledCache = { text, template: JSON.parse(text) as Template };
  }
  return compiledCache;
}

export interface Resource {
  /** Module path of the deployment holding it: "main", "main/storage", ... */
  readonly deployment: string;
  readonly type: string;
  readonly apiVersion: string;
  /** Full name (child segments separated by '/'). */
  readonly name: string;
  readonly id: string;
  /** False when its condition is false: declared, but not deployed. */
  readonly deployed: boolean;
  /** Name of the copy loop that made it. */
  readonly copy?: string;
  /** Everything but type, apiVersion, name, condition, copy and dependsOn, evaluated (empty when not deployed). */
  readonly body: JsonObject;
  /** Ids (and copy-loop names) of what it waits for, resolved within its deployment. */
  readonly dependsOn: readonly string[];
  /** The resource as written in the compiled template. */
  readonly raw: JsonObject;
  /** Evaluates an expression (a JSON value, `[...]` or literal) where this resource is declared. */
  readonly evaluate: (value: Json) => Json;
}

export interface Deployment {
  /** Module path: "main", "main/storage", ... */
  readonly path: string;
  readonly name: string;
  readonly id: string;
  readonly resourceGroup?: string;
  readonly template: Template;
  readonly parameters: Readonly<Record<string, Json>>;
  readonly resources: readonly Resource[];
  readonly modules: ReadonlyMap<string, Deployment>;
  readonly outputs: Readonly<Record<string, Json>>;
}

export class DeploymentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DeploymentError";
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Resource ids

const DEPLOYMENTS = "Microsoft.Resources/deployments";

function typedPath(type: string, names: readonly string[]): string {
  const segments = type.split("/");
  if (segments.length - 1 !== names.length) throw new DeploymentError(`type ${type} needs ${segments.length - 1} name segment(s), got ${names.join("/")}`);
  return [segments[0], ...names.flatMap((n, i) => [segments[i + 1], n])].join("/");
}

const subscriptionId = `/subscriptions/${SUBSCRIPTION_ID}`;
const resourceGroupId = (rg: string): string => `${subscriptionId}/resourceGroups/${rg}`;
const idAt = (scope: string, type: string, names: readonly string[]): string => `${scope}/providers/${typedPath(type, names)}`;

const str = (v: Json, what: string): string => {
  if (typeof v !== "string") throw new DeploymentError(`${what}: expected a string, got ${JSON.stringify(v)}`);
  return v;
};

// ---------------------------------------------------------------------------------------------------------------
// Values

function deepEqual(a: Json, b: Json): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function union(values: Json[]): Json {
  if (values.every(Array.isArray)) {
    const out: Json[] = [];
    for (const v of values as Json[][]) for (const item of v) if (!out.some((o) => deepEqual(o, item))) out.push(item);
    return out;
  }
  const merge = (a: JsonObject, b: JsonObject): JsonObject => {
    const out: JsonObject = { ...a };
    for (const [k, v] of Object.entries(b)) {
      const prev = out[k];
      out[k] = isObject(prev) && isObject(v) ? merge(prev, v) : v;
    }
    return out;
  };
  return values.reduce<JsonObject>((acc, v) => {
    if (!isObject(v)) throw new DeploymentError(`union() of an object and ${JSON.stringify(v)}`);
    return merge(acc, v);
  }, {});
}

/** .NET composite formatting as ARM's format() does it ({0}, {{ }}, True/False for booleans). */
function format(pattern: string, args: Json[]): string {
  return pattern.replace(/\{\{|\}\}|\{(\d+)(?::[^}]*)?\}/g, (m, index: string | undefined) => {
    if (m === "{{") return "{";
    if (m === "}}") return "}";
    const v = args[Number(index)];
    if (v === undefined) throw new DeploymentError(`format('${pattern}'): no argument ${index}`);
    return typeof v === "boolean" ? (v ? "True" : "False") : typeof v === "string" || typeof v === "number" ? String(v) : JSON.stringify(v);
  });
}

/** 13 characters of [a-z2-7], stable for the same inputs (what matters to names: length, alphabet, determinism). */
function uniqueString(values: Json[]): string {
  const digest = createHash("sha256").update(JSON.stringify(values)).digest();
  const alphabet = "abcdefghijklmnopqrstuvwxyz234567";
  return Array.from({ length: 13 }, (_, i) => alphabet[digest[i]! % 32]).join("");
}

const isEmpty = (v: Json): boolean =>
  v === null || v === "" || (Array.isArray(v) && v.length === 0) || (isObject(v) && Object.keys(v).length === 0);

// ---------------------------------------------------------------------------------------------------------------
// Parameters

function checkParameter(where: string, name: string, decl: ParameterDecl, value: Json): void {
  const fail = (why: string): never => {
    throw new DeploymentError(`${where}: parameter '${name}' ${why} (value ${JSON.stringify(value)})`);
  };
  const type = decl.type.toLowerCase();
  const ok =
    type === "string" || type === "securestring"
      ? typeof value === "string"
      : type === "int"
        ? Number.isInteger(value)
        : type === "bool"
          ? typeof value === "boolean"
          : type === "object" || type === "secureobject"
            ? isObject(value)
            : type === "array"
              ? Array.isArray(value)
              : fail(`has a type the model does not know: ${decl.type}`);
  if (!ok) fail(`must be of type ${decl.type}`);
  if (decl.allowedValues) {
    const items = Array.isArray(value) && type === "array" ? value : [value];
    if (!items.every((v) => decl.allowedValues!.some((a) => deepEqual(a, v)))) fail(`must be one of ${JSON.stringify(decl.allowedValues)}`);
  }
  if (typeof value === "number") {
    if (decl.minValue !== undefined && value < decl.minValue) fail(`is below minValue ${decl.minValue}`);
    if (decl.maxValue !== undefined && value > decl.maxValue) fail(`is above maxValue ${decl.maxValue}`);
  }
  if (typeof value === "string" || Array.isArray(value)) {
    if (decl.minLength !== undefined && value.length < decl.minLength) fail(`is shorter than minLength ${decl.minLength}`);
    if (decl.maxLength !== undefined && value.length > decl.maxLength) fail(`is longer than maxLength ${decl.maxLength}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Deployments

interface Scope {
  /** Module path, for messages. */
  readonly path: string;
  readonly resourceGroup?: string;
  /** Every resource deployed so far, by lower-case id, across all deployments (for references by id). */
  readonly registry: Map<string, Entry>;
}

interface Entry {
  readonly resource: Resource;
  /** Evaluated body, computed on first use. */
  body(): JsonObject;
  /** For a module: its deployment, deployed on first use. */
  module?: () => Deployment;
}

function once<T>(what: string, fn: () => T): () => T {
  let state: "new" | "busy" | "done" = "new";
  let value: T;
  return () => {
    if (state === "done") return value;
    if (state === "busy") throw new DeploymentError(`${what} depends on itself`);
    state = "busy";
    value = fn();
    state = "done";
    return value;
  };
}

function deployTemplate(template: Template, name: string, id: string, given: Readonly<Record<string, Json>>, scope: Scope): Deployment {
  const where = scope.path;
  const declared = template.parameters ?? {};
  for (const n of Object.keys(given)) if (!(n in declared)) throw new DeploymentError(`${where}: parameter '${n}' is not declared by the template`);

  const parameters: Record<string, Json> = {};
  const variableCache = new Map<string, Json>();
  const copyIndexes = new Map<string, number>();
  let currentCopy: string | undefined;
  const entries: Entry[] = [];

  const fns = new Map<string, ArmFunction>();
  const evaluateValue = (value: Json): Json => {
    if (typeof value === "string") {
      if (value.startsWith("[[")) return value.slice(1);
      if (!isExpression(value)) return value;
      try {
        return evaluateExpr(parseExpression(value.slice(1, -1)), fns);
      } catch (err) {
        if (err instanceof ArmExpressionError || err instanceof DeploymentError) {
          err.message = `${where}: ${err.message}`;
        }
        throw err;
      }
    }
    if (Array.isArray(value)) return value.map(evaluateValue);
    if (isObject(value)) {
      const out: JsonObject = {};
      for (const [k, v] of Object.entries(value)) {
        if (k === "copy" && Array.isArray(v)) {
          // Property loops: copy: [{ name, count, input }] makes the array property `name`.
          for (const loop of v) {
            if (!isObject(loop)) throw new DeploymentError(`${where}: malformed property copy ${JSON.stringify(loop)}`);
            const loopName = str(loop.name ?? null, "property copy name");
            const count = evaluateValue(loop.count ?? null);
            if (typeof count !== "number") throw new DeploymentError(`${where}: property copy ${loopName} count is ${JSON.stringify(count)}`);
            out[loopName] = Array.from({ length: count }, (_, i) => {
              copyIndexes.set(loopName, i);
              try {
                return evaluateValue(loop.input ?? null);
              } finally {
                copyIndexes.delete(loopName);
              }
            });
          }
          continue;
        }
        // Property names may be expressions too (e.g. the keys of userAssignedIdentities).
        out[isExpression(k) ? str(evaluateValue(k), `property name ${k}`) : k] = evaluateValue(v);
      }
      return out;
    }
    return value;
  };

  const variable = (n: string): Json => {
    if (variableCache.has(n)) return variableCache.get(n)!;
    const vars = template.variables ?? {};
    let value: Json;
    const loops = Array.isArray(vars.copy) ? vars.copy.filter(isObject) : [];
    const loop = loops.find((l) => l.name === n);
    if (loop) {
      value = (evaluateValue({ copy: [loop] }) as JsonObject)[n]!;
    } else {
      if (!(n in vars) || n === "copy") throw new DeploymentError(`${where}: variables('${n}') is not declared`);
      value = evaluateValue(vars[n]!);
    }
    variableCache.set(n, value);
    return value;
  };

  const here = (type: string, names: readonly string[]): string =>
    scope.resourceGroup !== undefined ? idAt(resourceGroupId(scope.resourceGroup), type, names) : idAt(subscriptionId, type, names);

  const splitNames = (args: Json[], fn: string): { type: string; names: string[]; rest: Json[] } => {
    const at = args.findIndex((a) => typeof a === "string" && /^[A-Za-z]+\.[A-Za-z.]+\/[A-Za-z/]+$/.test(a));
    if (at < 0) throw new DeploymentError(`${where}: ${fn}(${JSON.stringify(args)}) has no resource type`);
    return { type: args[at] as string, names: args.slice(at + 1).map((a) => str(a, `${fn} name segment`)), rest: args.slice(0, at) };
  };

  const reference = (args: Json[]): Json => {
    const target = str(args[0] ?? null, "reference() target");
    const full = typeof args[2] === "string" && args[2].toLowerCase() === "full";
    const byId = scope.registry.get(target.toLowerCase()) ?? entries.find((e) => e.resource.name === target && !target.includes("/"));
    if (!byId) throw new DeploymentError(`${where}: reference('${target}') names nothing deployed in this model`);
    if (!byId.resource.deployed) throw new DeploymentError(`${where}: reference('${target}') reads a resource whose condition is false (ARM fails the deployment)`);
    if (byId.module) {
      const d = byId.module();
      const outputs: JsonObject = {};
      for (const [k, v] of Object.entries(d.outputs)) outputs[k] = { type: d.template.outputs?.[k]?.type ?? "string", value: v };
      return full ? { properties: { outputs } } : { outputs };
    }
    const body = byId.body();
    const declaredProperties = isObject(body.properties) ? body.properties : {};
    const properties = {
      ...declaredProperties,
      ...runtimeProperties({ type: byId.resource.type, id: byId.resource.id, name: byId.resource.name, location: body.location ?? null, properties: declaredProperties }),
    };
    return full
      ? { ...body, id: byId.resource.id, name: byId.resource.name, type: byId.resource.type, apiVersion: byId.resource.apiVersion, properties }
      : properties;
  };

  const table: Record<string, ArmFunction> = {
    parameters: eager(([n]) => {
      const key = str(n ?? null, "parameters()");
      if (!(key in parameters)) throw new DeploymentError(`${where}: parameters('${key}') is not bound`);
      return parameters[key]!;
    }),
    variables: eager(([n]) => variable(str(n ?? null, "variables()"))),
    format: eager(([p, ...rest]) => format(str(p ?? null, "format pattern"), rest)),
    concat: eager((values) => (values.every(Array.isArray) ? (values as Json[][]).flat() : values.map((v) => (typeof v === "string" ? v : JSON.stringify(v))).join(""))),
    string: eager(([v]) => (typeof v === "string" ? v : typeof v === "boolean" ? (v ? "True" : "False") : JSON.stringify(v))),
    int: eager(([v]) => Number.parseInt(String(v), 10)),
    tolower: eager(([v]) => str(v ?? null, "toLower()").toLowerCase()),
    toupper: eager(([v]) => str(v ?? null, "toUpper()").toUpperCase()),
    empty: eager(([v]) => isEmpty(v ?? null)),
    not: eager(([v]) => !v),
    and: (args, ev) => args.every((a) => ev(a) === true),
    or: (args, ev) => args.some((a) => ev(a) === true),
    if: (args, ev) => {
      if (args.length !== 3) throw new DeploymentError(`${where}: if() takes 3 arguments`);
      return ev(args[0]!) === true ? ev(args[1]!) : ev(args[2]!);
    },
    coalesce: (args, ev) => {
      for (const a of args) {
        const v = ev(a);
        if (v !== null) return v;
      }
      return null;
    },
    equals: eager(([a, b]) => deepEqual(a ?? null, b ?? null)),
    contains: eager(([c, item]) =>
      typeof c === "string" ? c.toLowerCase().includes(String(item).toLowerCase()) : Array.isArray(c) ? c.some((x) => deepEqual(x, item ?? null)) : isObject(c) ? String(item) in c : false,
    ),
    startswith: eager(([s, p]) => str(s ?? null, "startsWith()").toLowerCase().startsWith(str(p ?? null, "startsWith()").toLowerCase())),
    endswith: eager(([s, p]) => str(s ?? null, "endsWith()").toLowerCase().endsWith(str(p ?? null, "endsWith()").toLowerCase())),
    replace: eager(([s, a, b]) => str(s ?? null, "replace()").split(str(a ?? null, "replace()")).join(str(b ?? null, "replace()"))),
    substring: eager(([s, start, length]) => str(s ?? null, "substring()").substr(Number(start), length === undefined ? undefined : Number(length))),
    length: eager(([v]) => (typeof v === "string" || Array.isArray(v) ? v.length : isObject(v) ? Object.keys(v).length : 0)),
    first: eager(([v]) => (Array.isArray(v) ? (v[0] ?? null) : str(v ?? null, "first()").slice(0, 1))),
    last: eager(([v]) => (Array.isArray(v) ? (v[v.length - 1] ?? null) : str(v ?? null, "last()").slice(-1))),
    createobject: eager((values) => {
      const out: JsonObject = {};
      for (let i = 0; i < values.length; i += 2) out[str(values[i]!, "createObject() key")] = values[i + 1] ?? null;
      return out;
    }),
    createarray: eager((values) => values),
    union: eager(union),
    json: eager(([s]) => JSON.parse(str(s ?? null, "json()")) as Json),
    null: () => null,
    true: () => true,
    false: () => false,
    copyindex: eager(([a, b]) => {
      const loopName = typeof a === "string" ? a : currentCopy;
      const offset = typeof a === "number" ? a : typeof b === "number" ? b : 0;
      const index = loopName === undefined ? undefined : copyIndexes.get(loopName);
      if (index === undefined) throw new DeploymentError(`${where}: copyIndex() outside a copy loop`);
      return index + offset;
    }),
    uniquestring: eager(uniqueString),
    guid: eager((values) => uuidFrom(`guid:${JSON.stringify(values)}`)),
    subscription: () => ({ id: subscriptionId, subscriptionId: SUBSCRIPTION_ID, tenantId: TENANT_ID, displayName: "safedata tests" }),
    tenant: () => ({ tenantId: TENANT_ID, countryCode: "DK", displayName: "safedata tests" }),
    resourcegroup: () => {
      if (scope.resourceGroup === undefined) throw new DeploymentError(`${where}: resourceGroup() at subscription scope`);
      return { id: resourceGroupId(scope.resourceGroup), name: scope.resourceGroup };
    },
    deployment: () => ({ name }),
    resourceid: eager((args) => {
      const { type, names, rest } = splitNames(args, "resourceId");
      if (rest.length === 0) return here(type, names);
      const [sub, rg] = rest.length === 2 ? rest : [SUBSCRIPTION_ID, rest[0]];
      return idAt(`/subscriptions/${str(sub ?? null, "subscription id")}/resourceGroups/${str(rg ?? null, "resource group")}`, type, names);
    }),
    subscriptionresourceid: eager((args) => {
      const { type, names } = splitNames(args, "subscriptionResourceId");
      return idAt(subscriptionId, type, names);
    }),
    extensionresourceid: eager(([scopeId, ...args]) => {
      const { type, names } = splitNames(args, "extensionResourceId");
      return idAt(str(scopeId ?? null, "extensionResourceId scope"), type, names);
    }),
    reference: eager(reference),
  };
  for (const [k, v] of Object.entries(table)) fns.set(k, v);

  // Parameters: the given value, or the default (which may refer to other parameters), then the declared checks.
  const bindParameter = (n: string, decl: ParameterDecl): void => {
    let value: Json;
    if (n in given) value = given[n]!;
    else if (decl.defaultValue !== undefined) value = evaluateValue(decl.defaultValue);
    else throw new DeploymentError(`${where}: required parameter '${n}' has no value`);
    checkParameter(where, n, decl, value);
    parameters[n] = value;
  };
  for (const [n, decl] of Object.entries(declared)) bindParameter(n, decl);

  // Resources: names, ids and conditions first (Bicep makes them start-time values); bodies and modules on demand.
  const declare = (raw: JsonObject): void => {
    const type = str(raw.type ?? null, "resource type");
    const apiVersion = str(raw.apiVersion ?? null, `${type} apiVersion`);
    const instances: (number | undefined)[] = [];
    const copy = isObject(raw.copy) ? raw.copy : undefined;
    const copyName = copy ? str(copy.name ?? null, "copy name") : undefined;
    if (copy) {
      const count = evaluateValue(copy.count ?? null);
      if (typeof count !== "number") throw new DeploymentError(`${where}: copy ${copyName} count is ${JSON.stringify(count)}`);
      for (let i = 0; i < count; i++) instances.push(i);
    } else {
      instances.push(undefined);
    }
    for (const index of instances) {
      // Evaluates in this instance's copy context (and only in it: a resource evaluated on demand from inside
      // another one's loop must not see that loop's index), restoring whatever context was current.
      const within = <T>(fn: () => T): T => {
        const savedCopy = currentCopy;
        const savedIndex = copyName !== undefined ? copyIndexes.get(copyName) : undefined;
        currentCopy = copyName;
        if (copyName !== undefined && index !== undefined) copyIndexes.set(copyName, index);
        try {
          return fn();
        } finally {
          currentCopy = savedCopy;
          if (copyName !== undefined) {
            if (savedIndex === undefined) copyIndexes.delete(copyName);
            else copyIndexes.set(copyName, savedIndex);
          }
        }
      };
      const evaluate = (value: Json): Json => within(() => evaluateValue(value));
      const fullName = str(evaluate(raw.name ?? null), `${type} name`);
      const deployed = raw.condition === undefined ? true : evaluate(raw.condition) === true;
      let resourceId: string;
      let moduleGroup: string | undefined;
      if (type === DEPLOYMENTS) {
        moduleGroup = raw.resourceGroup !== undefined ? str(evaluate(raw.resourceGroup), "module resourceGroup") : scope.resourceGroup;
        resourceId = moduleGroup !== undefined ? idAt(resourceGroupId(moduleGroup), type, [fullName]) : idAt(subscriptionId, type, [fullName]);
      } else if (raw.scope !== undefined) {
        resourceId = idAt(str(evaluate(raw.scope), `${type} scope`), type, fullName.split("/"));
      } else {
        resourceId = here(type, fullName.split("/"));
      }
      const dependsOn = Array.isArray(raw.dependsOn) ? raw.dependsOn.map((d) => str(evaluate(d), `${fullName} dependsOn`)) : [];
      const resource: Resource = {
        deployment: where,
        type,
        apiVersion,
        name: fullName,
        id: resourceId,
        deployed,
        ...(copyName !== undefined ? { copy: copyName } : {}),
        get body() {
          return entry.body();
        },
        dependsOn,
        raw,
        evaluate,
      };
      const body = once(`${where} ${type} ${fullName}`, (): JsonObject => {
        if (!deployed) return {};
        const out: JsonObject = {};
        for (const [k, v] of Object.entries(raw)) {
          if (["type", "apiVersion", "name", "condition", "copy", "dependsOn", "comments", "metadata"].includes(k)) continue;
          if (type === DEPLOYMENTS && k === "properties" && isObject(v)) {
            // The nested template is evaluated in its own scope (expressionEvaluationOptions.scope = inner).
            const { template: _template, parameters: params, ...rest } = v;
            out[k] = { ...(evaluate(rest) as JsonObject), parameters: evaluate(params ?? {}) };
            continue;
          }
          out[k] = evaluate(v);
        }
        return out;
      });
      const entry: Entry = { resource, body };
      if (type === DEPLOYMENTS) {
        entry.module = once(`module ${fullName}`, () => {
          const props = raw.properties;
          if (!isObject(props) || !isObject(props.template)) throw new DeploymentError(`${where}: module ${fullName} has no nested template`);
          const options = isObject(props.expressionEvaluationOptions) ? props.expressionEvaluationOptions.scope : undefined;
          if (options !== "inner") throw new DeploymentError(`${where}: module ${fullName} is not evaluated in inner scope`);
          const passed = body().properties;
          const values: Record<string, Json> = {};
          const parametersPassed = isObject(passed) && isObject(passed.parameters) ? passed.parameters : {};
          for (const [k, v] of Object.entries(parametersPassed)) {
            if (!isObject(v) || !("value" in v)) throw new DeploymentError(`${where}: module ${fullName} parameter ${k} has no value`);
            values[k] = v.value!;
          }
          return deployTemplate(props.template as unknown as Template, fullName, resourceId, values, {
            path: `${where}/${fullName}`,
            ...(moduleGroup !== undefined ? { resourceGroup: moduleGroup } : {}),
            registry: scope.registry,
          });
        });
      }
      entries.push(entry);
      if (deployed) scope.registry.set(resourceId.toLowerCase(), entry);
    }
  };
  for (const raw of template.resources) declare(raw);

  // dependsOn must name a resource (by id) or a copy loop / resource (by name) of the same template.
  for (const { resource } of entries) {
    for (const d of resource.dependsOn) {
      const found = d.startsWith("/")
        ? entries.some((e) => e.resource.id.toLowerCase() === d.toLowerCase())
        : entries.some((e) => e.resource.copy === d || e.resource.name === d);
      if (!found) throw new DeploymentError(`${where}: ${resource.type} ${resource.name} depends on '${d}', which this template does not declare`);
    }
  }

  const modules = new Map<string, Deployment>();
  for (const e of entries) {
    if (!e.resource.deployed) continue;
    e.body();
    if (e.module) modules.set(e.resource.name, e.module());
  }

  const outputs: Record<string, Json> = {};
  for (const [n, o] of Object.entries(template.outputs ?? {})) {
    if (o.condition !== undefined && evaluateValue(o.condition) !== true) continue;
    const value = evaluateValue(o.value);
    checkParameter(`${where} output`, n, { type: o.type }, value);
    outputs[n] = value;
  }

  return {
    path: where,
    name,
    id,
    ...(scope.resourceGroup !== undefined ? { resourceGroup: scope.resourceGroup } : {}),
    template,
    parameters,
    resources: entries.map((e) => e.resource),
    modules,
    outputs,
  };
}

/** Plays a deployment of the compiled template with these parameters (as `az deployment sub create` would). */
export function deploy(parameters: Readonly<Record<string, Json>>, template: Template = compiled().template): Deployment {
  if (!/subscriptionDeploymentTemplate\.json/.test(template.$schema)) throw new DeploymentError(`main template is not a subscription deployment: ${template.$schema}`);
  return deployTemplate(template, "main", idAt(subscriptionId, DEPLOYMENTS, ["main"]), parameters, { path: "main", registry: new Map() });
}

// ---------------------------------------------------------------------------------------------------------------
// azd

/** The azd environment a test deployment uses: what `azd env new` + `azd env set AZURE_LOCATION` give. */
export const AZD_ENV: Readonly<Record<string, string>> = {
  AZURE_ENV_NAME: "safedata-prod",
  AZURE_LOCATION: "westeurope",
  AZURE_PRINCIPAL_ID: "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d",
  AZURE_SUBSCRIPTION_ID: SUBSCRIPTION_ID,
};

/** infra/main.parameters.json with ${VAR} replaced from an azd environment (unset variables become "", as in azd). */
export function azdParameters(env: Readonly<Record<string, string>> = AZD_ENV): Record<string, Json> {
  const file = JSON.parse(readRepoFile("infra/main.parameters.json")) as { parameters: Record<string, { value: Json }> };
  const substitute = (v: Json): Json =>
    typeof v === "string"
      ? v.replace(/\$\{([A-Z0-9_]+)\}/g, (_, n: string) => env[n] ?? "")
      : Array.isArray(v)
        ? v.map(substitute)
        : isObject(v)
          ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, substitute(x)]))
          : v;
  return Object.fromEntries(Object.entries(file.parameters).map(([k, p]) => [k, substitute(p.value)]));
}

let defaultDeployment: Deployment | undefined;
/** The deployment `azd up` makes with the default azd environment and main.parameters.json as committed. */
export function azdUp(overrides: Readonly<Record<string, Json>> = {}): Deployment {
  if (Object.keys(overrides).length > 0) return deploy({ ...azdParameters(), ...overrides });
  defaultDeployment ??= deploy(azdParameters());
  return defaultDeployment;
}

// ---------------------------------------------------------------------------------------------------------------
// Queries

/** Every resource of a deployment and its modules (the module deployments themselves included). */
export function allResources(d: Deployment): Resource[] {
  return d.resources.flatMap((r) => [r, ...(r.type === DEPLOYMENTS && d.modules.has(r.name) ? allResources(d.modules.get(r.name)!) : [])]);
}

/** Deployed resources (condition true) of a type, in every module. */
export const ofType = (d: Deployment, type: string): Resource[] =>
  allResources(d).filter((r) => r.deployed && r.type.toLowerCase() === type.toLowerCase());

export function only<T>(items: readonly T[], what: string): T {
  if (items.length !== 1) throw new Error(`expected exactly one ${what}, found ${items.length}`);
  return items[0]!;
}

/** A module of the main deployment, by its deployment name. */
export function moduleOf(d: Deployment, name: string): Deployment {
  const m = d.modules.get(name);
  if (!m) throw new Error(`the deployment has no module '${name}' (has ${[...d.modules.keys()].join(", ")})`);
  return m;
}

/** A value at a dotted path of a JSON value ("properties.siteConfig.minTlsVersion"). */
export function at(value: Json | undefined, path: string): Json | undefined {
  let v: Json | undefined = value;
  for (const key of path.split(".")) {
    if (!isObject(v)) return undefined;
    v = v[key];
  }
  return v;
}

export const parseArm = (value: string): Expr => {
  if (!isExpression(value)) throw new Error(`not an expression: ${value}`);
  return parseExpression(value.slice(1, -1));
};

/** EU member states' Azure regions (public cloud). Norway, Switzerland and the UK are not in the EU. */
export const EU_REGIONS = new Set([
  "westeurope",
  "northeurope",
  "swedencentral",
  "swedensouth",
  "germanywestcentral",
  "germanynorth",
  "francecentral",
  "francesouth",
  "italynorth",
  "polandcentral",
  "spaincentral",
  "austriaeast",
  "belgiumcentral",
  "denmarkeast",
  "finlandcentral",
  "greececentral",
]);
