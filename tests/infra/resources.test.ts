/**
 * Every container, blob container and queue the code uses (shared/config/resources.ts) exists in the Bicep under
 * the same name and partition key, with TTL where declared; local-only stand-ins do not; and the retention
 * backstops are what the README says they are.
 */
import { describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import {
  BLOB_CONTAINERS,
  COSMOS_CONTAINERS,
  LOCAL_ONLY_BLOB_CONTAINERS,
  QUEUES,
  type CosmosContainerSpec,
} from "../../shared/config/resources";
import { get, literal, show, type BicepFile, type BicepValue, type ResourceDecl } from "./bicep-reader";
import { allFiles, evaluateString, literalVars, main, moduleOf, only, rel, resourcesOfType, stringArrayVar } from "./infra";

const cosmosFile = () => moduleOf("cosmos");
const storageFile = () => moduleOf("storage");

const BLOB_CONTAINER_TYPE = "Microsoft.Storage/storageAccounts/blobServices/containers";
/** The container the audit-anchoring timer appends to. */
const AUDIT_ANCHORS = BLOB_CONTAINERS.auditAnchors.name;

/** The integer a value stands for: a number literal, or a parameter of `file` that has a number literal default. */
function intValue(file: BicepFile, value: BicepValue | undefined, what: string): number {
  const l = literal(value);
  if (typeof l === "number") return l;
  const param = value?.kind === "expr" ? file.params.get(value.text.trim()) : undefined;
  const fallback = literal(param?.default);
  if (typeof fallback !== "number") throw new Error(`${what}: cannot evaluate ${show(value)}`);
  return fallback;
}

describe("Cosmos DB containers vs. COSMOS_CONTAINERS", () => {
  /** var containers in cosmos.bicep; `defaultTtl: null` (TTL off) reads as undefined, like an absent defaultTtl in the spec. */
  const declared = (): { name: string; defaultTtl?: number }[] => {
    const l = literal(cosmosFile().vars.get("containers"));
    if (!Array.isArray(l)) throw new Error(`${rel(cosmosFile().path)}: var containers must be an array of literal objects`);
    return (l as { name: string; defaultTtl?: number | null }[]).map((c) => ({ name: c.name, defaultTtl: c.defaultTtl ?? undefined }));
  };
  const specs: CosmosContainerSpec[] = Object.values(COSMOS_CONTAINERS);

  it("creates exactly the containers the code uses", () => {
    expect(declared().map((c) => c.name).sort(), `${rel(cosmosFile().path)} var containers`).toEqual(specs.map((s) => s.name).sort());
  });

  it("sets TTL exactly where the code declares defaultTtl, with the same value", () => {
    const byName = new Map(declared().map((c) => [c.name, c.defaultTtl]));
    for (const spec of specs) expect(byName.get(spec.name), `defaultTtl of container '${spec.name}'`).toBe(spec.defaultTtl);
  });

  it("creates every container from that list, partitioned by the code's partition key, with its TTL", () => {
    const containers = only(resourcesOfType(cosmosFile(), "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers"), "container resource");
    expect(containers.loop?.source, "the container resource loops over var containers").toBe("containers");
    const item = containers.loop!.item;
    expect(show(containers.body.entries.name)).toBe(`${item}.name`);
    expect(show(get(containers.body, "properties.resource.id"))).toBe(`${item}.name`);
    expect(show(get(containers.body, "properties.resource.defaultTtl"))).toBe(`${item}.defaultTtl`);
    const paths = literal(get(containers.body, "properties.resource.partitionKey.paths"));
    for (const spec of specs) expect(paths, `partition key of '${spec.name}'`).toEqual([spec.partitionKey]);
    expect(literal(get(containers.body, "properties.resource.partitionKey.kind"))).toBe("Hash");
  });

  it("indexes consistently and automatically (the code's queries filter and sort on ordinary fields)", () => {
    const containers = only(resourcesOfType(cosmosFile(), "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers"), "container resource");
    expect(literal(get(containers.body, "properties.resource.indexingPolicy.indexingMode"))).toBe("consistent");
    expect(literal(get(containers.body, "properties.resource.indexingPolicy.automatic"))).toBe(true);
    expect(literal(get(containers.body, "properties.resource.indexingPolicy.includedPaths"))).toEqual([{ path: "/*" }]);
  });

  it("keeps continuous backup on the shortest tier, which bounds how long an erased record stays restorable", () => {
    const account = only(resourcesOfType(cosmosFile(), "Microsoft.DocumentDB/databaseAccounts"), "Cosmos DB account");
    expect(literal(get(account.body, "properties.backupPolicy"))).toEqual({
      type: "Continuous",
      continuousModeProperties: { tier: "Continuous7Days" },
    });
  });
});

describe("blob containers and queues vs. BLOB_CONTAINERS and QUEUES", () => {
  it("creates exactly the blob containers the code uses (plus the deployment package container)", () => {
    const names = stringArrayVar(storageFile(), "blobContainerNames");
    expect(names.sort(), `${rel(storageFile().path)} var blobContainerNames`).toEqual(Object.values(BLOB_CONTAINERS).map((c) => c.name).sort());
    const loop = only(resourcesOfType(storageFile(), BLOB_CONTAINER_TYPE).filter((r) => r.loop), "container loop");
    expect(loop.loop?.source).toBe("blobContainerNames");
    expect(literal(get(loop.body, "properties.publicAccess"))).toBe("None");
  });

  it("creates every queue the code uses and its -poison twin", () => {
    const expected = Object.values(QUEUES).flatMap((q) => [q.name, `${q.name}-poison`]);
    expect(stringArrayVar(storageFile(), "queueNames").sort(), `${rel(storageFile().path)} var queueNames`).toEqual(expected.sort());
    const loop = only(resourcesOfType(storageFile(), "Microsoft.Storage/storageAccounts/queueServices/queues"), "queue resource");
    expect(loop.loop?.source).toBe("queueNames");
  });

  it("does not create the local-only stand-ins", () => {
    for (const { name } of Object.values(LOCAL_ONLY_BLOB_CONTAINERS)) {
      const found = allFiles().filter((f) => f.code.includes(`'${name}'`));
      expect(found.map((f) => rel(f.path)), `local-only container '${name}' must not be in the Bicep`).toEqual([]);
    }
  });
});

describe("retention backstops", () => {
  it("deletes payload blobs 33 days after creation (one day after the 32-day purge)", () => {
    const policy = only(resourcesOfType(storageFile(), "Microsoft.Storage/storageAccounts/managementPolicies"), "lifecycle policy");
    const rules = get(policy.body, "properties.policy.rules");
    if (rules?.kind !== "array") throw new Error("properties.policy.rules must be an array literal");
    const scope = literalVars(storageFile());
    const payloadPrefix = `${BLOB_CONTAINERS.payloads.name}/`;
    const payloadRules = rules.items.filter((rule) => {
      const prefixes = get(rule, "definition.filters.prefixMatch");
      return prefixes?.kind === "array" && prefixes.items.some((p) => evaluateString(p, scope, "prefixMatch") === payloadPrefix);
    });
    const rule = only(payloadRules, `lifecycle rule with prefixMatch '${payloadPrefix}'`);
    expect(literal(get(rule, "enabled"))).toBe(true);
    expect(literal(get(rule, "definition.actions.baseBlob.delete.daysAfterCreationGreaterThan")), "payload lifecycle delete").toBe(33);
    expect(literal(get(rule, "definition.filters.blobTypes"))).toContain("blockBlob");
  });

  it("keeps no soft-deleted or versioned copies of blobs past the purge", () => {
    const blobService = only(resourcesOfType(storageFile(), "Microsoft.Storage/storageAccounts/blobServices"), "blob service");
    expect(literal(get(blobService.body, "properties.deleteRetentionPolicy.enabled")), "blob soft delete").toBe(false);
    expect(literal(get(blobService.body, "properties.isVersioningEnabled")), "blob versioning").toBe(false);
    const containerDays = literal(get(blobService.body, "properties.containerDeleteRetentionPolicy.days"));
    expect(typeof containerDays === "number" && containerDays <= 7, "container soft delete at most 7 days").toBe(true);
  });
});

describe("audit anchors: write-once evidence outside Cosmos DB", () => {
  /**
   * audit-anchors is created by the container loop like every other container; the policy's parent is an `existing`
   * reference to it by name (a child cannot name one element of a loop as simply).
   */
  const auditAnchorsContainer = (): ResourceDecl => {
    const file = storageFile();
    const scope = literalVars(file);
    const references = file.resources.filter(
      (r) => r.existing && r.type.toLowerCase() === BLOB_CONTAINER_TYPE.toLowerCase() && evaluateString(r.body.entries.name, scope, `${r.symbol} name`) === AUDIT_ANCHORS,
    );
    return only(references, `reference to the '${AUDIT_ANCHORS}' container`);
  };
  const immutabilityPolicy = (): ResourceDecl => {
    const policies = resourcesOfType(storageFile(), `${BLOB_CONTAINER_TYPE}/immutabilityPolicies`);
    return only(
      policies.filter((p) => show(p.body.entries.parent) === auditAnchorsContainer().symbol),
      `immutabilityPolicies resource with parent ${auditAnchorsContainer().symbol}`,
    );
  };

  it(`creates '${AUDIT_ANCHORS}' in the container loop and attaches its policy only after the loop has run`, () => {
    expect(stringArrayVar(storageFile(), "blobContainerNames"), "var blobContainerNames").toContain(AUDIT_ANCHORS);
    const loop = only(resourcesOfType(storageFile(), BLOB_CONTAINER_TYPE).filter((r) => r.loop), "container loop");
    expect(show(auditAnchorsContainer().body.entries.parent), `parent of the '${AUDIT_ANCHORS}' reference`).toBe(show(loop.body.entries.parent));
    const dependsOn = get(immutabilityPolicy().body, "dependsOn");
    const waitsFor = dependsOn?.kind === "array" ? dependsOn.items.map((d) => show(d)) : [];
    expect(waitsFor, "immutability policy dependsOn").toContain(loop.symbol);
  });

  it(`puts a time-based retention policy on '${AUDIT_ANCHORS}' that allows appends to append blobs only`, () => {
    const policy = immutabilityPolicy();
    expect(literal(policy.body.entries.name)).toBe("default");
    expect(literal(get(policy.body, "properties.allowProtectedAppendWrites")), "allowProtectedAppendWrites").toBe(true);
    expect(literal(get(policy.body, "properties.allowProtectedAppendWritesAll")) ?? false, "allowProtectedAppendWritesAll (block blobs)").toBe(false);
  });

  it("keeps anchors at least the 5-year evidence period (1826 days) by default, also as main.bicep deploys it", () => {
    const storage = storageFile();
    const period = get(immutabilityPolicy().body, "properties.immutabilityPeriodSinceCreationInDays");
    expect(intValue(storage, period, "immutabilityPeriodSinceCreationInDays"), "storage.bicep default").toBeGreaterThanOrEqual(1826);
    // If main.bicep passes the parameter on, what it passes by default counts too.
    const paramName = period?.kind === "expr" ? period.text.trim() : undefined;
    const passed = paramName ? main().modules.find((m) => m.symbol === "storage")?.params[paramName] : undefined;
    if (passed) expect(intValue(main(), passed, `main.bicep storage ${paramName}`), "main.bicep default").toBeGreaterThanOrEqual(1826);
  });

  it("leaves a locked policy alone: deployed only while auditAnchorsPolicyLocked is false, which is the default", () => {
    const condition = immutabilityPolicy().condition?.replace(/\s+/g, "");
    expect(condition, "condition of the immutability policy").toBe("!auditAnchorsPolicyLocked");
    for (const [file, label] of [
      [storageFile(), "storage.bicep"],
      [main(), "main.bicep"],
    ] as const) {
      const param = file.params.get("auditAnchorsPolicyLocked");
      expect(param?.type, `${label} param auditAnchorsPolicyLocked`).toBe("bool");
      expect(literal(param?.default), `${label} default`).toBe(false);
    }
    expect(show(main().modules.find((m) => m.symbol === "storage")?.params.auditAnchorsPolicyLocked)).toBe("auditAnchorsPolicyLocked");
  });

  it(`never lets a lifecycle rule touch '${AUDIT_ANCHORS}' (every rule is prefix-filtered away from it)`, () => {
    const file = storageFile();
    const scope = literalVars(file);
    const containerPath = `${AUDIT_ANCHORS}/`;
    for (const policy of resourcesOfType(file, "Microsoft.Storage/storageAccounts/managementPolicies")) {
      const rules = get(policy.body, "properties.policy.rules");
      if (rules?.kind !== "array") throw new Error("properties.policy.rules must be an array literal");
      for (const rule of rules.items) {
        const ruleName = show(get(rule, "name"));
        const prefixes = get(rule, "definition.filters.prefixMatch");
        if (prefixes?.kind !== "array" || prefixes.items.length === 0) throw new Error(`lifecycle rule ${ruleName} has no prefixMatch: it would apply to every container`);
        for (const p of prefixes.items) {
          const prefix = evaluateString(p, scope, `lifecycle rule ${ruleName} prefixMatch`);
          const overlaps = prefix.startsWith(containerPath) || containerPath.startsWith(prefix);
          expect(overlaps, `lifecycle rule ${ruleName} prefix '${prefix}' reaches '${containerPath}'`).toBe(false);
        }
      }
    }
  });
});
