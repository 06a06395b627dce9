/**
 * Shared by the infra tests: loads every Bicep file under infra/ once, follows module paths, and evaluates the few
 * simple values the tests need (string literals, `${...}` interpolations of known names, references to known names).
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import {
  interpolationParts,
  literal,
  readBicep,
  show,
  type BicepFile,
  type BicepValue,
  type ModuleDecl,
  type ResourceDecl,
} from "./bicep-reader";

export const REPO = resolve(__dirname, "..", "..");
export const INFRA = join(REPO, "infra");

/** Path relative to the repository, for messages. */
export const rel = (path: string): string => relative(REPO, path).replace(/\\/g, "/");

export const bicepPaths: readonly string[] = readdirSync(INFRA, { recursive: true })
  .map(String)
  .filter((p) => p.endsWith(".bicep"))
  .map((p) => join(INFRA, p))
  .sort();

const cache = new Map<string, BicepFile>();
export function bicep(path: string): BicepFile {
  const full = resolve(INFRA, path);
  let file = cache.get(full);
  if (!file) {
    file = readBicep(full);
    cache.set(full, file);
  }
  return file;
}

export const allFiles = (): BicepFile[] => bicepPaths.map((p) => bicep(p));
export const main = (): BicepFile => bicep("main.bicep");

export const isRegistryModule = (m: ModuleDecl): boolean => /^br[:/]/.test(m.path);

/** Absolute path of a local module referenced from `from`. */
export const modulePath = (from: BicepFile, m: ModuleDecl): string => resolve(dirname(from.path), m.path);

/** The local module main.bicep declares with this symbolic name, read. */
export function moduleOf(symbol: string): BicepFile {
  const m = main().modules.find((x) => x.symbol === symbol);
  if (!m) throw new Error(`infra/main.bicep has no module '${symbol}'`);
  if (isRegistryModule(m)) throw new Error(`module '${symbol}' is a registry module`);
  return bicep(modulePath(main(), m));
}

export const resourcesOfType = (file: BicepFile, type: string): ResourceDecl[] =>
  file.resources.filter((r) => r.type.toLowerCase() === type.toLowerCase() && !r.existing);

/** Every declared (not `existing`) resource in every file, with the file it is in. */
export function everyResource(): { file: BicepFile; resource: ResourceDecl }[] {
  return allFiles().flatMap((file) => file.resources.filter((r) => !r.existing).map((resource) => ({ file, resource })));
}

export function only<T>(items: readonly T[], what: string): T {
  if (items.length !== 1) throw new Error(`expected exactly one ${what}, found ${items.length}`);
  return items[0]!;
}

/**
 * Evaluates a value to a string when it is a string literal, an interpolation of names in `scope`, or a bare name
 * in `scope`. Anything else throws, naming the expression, so a test never guesses.
 */
export function evaluateString(value: BicepValue | undefined, scope: Readonly<Record<string, string>>, what: string): string {
  if (!value) throw new Error(`${what}: absent`);
  const lookup = (name: string): string => {
    const v = scope[name];
    if (v === undefined) throw new Error(`${what}: cannot evaluate '${name}' (not a known name)`);
    return v;
  };
  if (value.kind === "string") {
    return interpolationParts(value.raw)
      .map((p) => ("text" in p ? p.text : lookup(p.expr)))
      .join("");
  }
  if (value.kind === "expr" && /^[A-Za-z_]\w*$/.test(value.text)) return lookup(value.text);
  const l = literal(value);
  if (typeof l === "number" || typeof l === "boolean") return String(l);
  throw new Error(`${what}: cannot evaluate ${show(value)}`);
}

/** The string-valued literal `var`s of a file, for evaluateString scopes. */
export function literalVars(file: BicepFile): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of file.vars) {
    const l = literal(value);
    if (typeof l === "string") out[name] = l;
  }
  return out;
}

/** Items of an array `var`, each evaluated as a string (items may name other literal vars). */
export function stringArrayVar(file: BicepFile, name: string): string[] {
  const v = file.vars.get(name);
  if (v?.kind !== "array") throw new Error(`${rel(file.path)}: var ${name} is not an array literal`);
  const scope = literalVars(file);
  return v.items.map((item, i) => evaluateString(item, scope, `${rel(file.path)} var ${name}[${i}]`));
}

export const readRepoFile = (path: string): string => readFileSync(join(REPO, path), "utf8");
export const repoFileExists = (path: string): boolean => existsSync(join(REPO, path));

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
