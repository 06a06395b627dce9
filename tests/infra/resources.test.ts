/**
 * Every container, blob container and queue the code uses (shared/config/resources.ts) is created by a deployment
 * of the compiled template under the same name and partition key, with TTL where declared; local-only stand-ins
 * are not; and the retention backstops are what the README says they are.
 */
import { describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { BLOB_CONTAINERS, COSMOS_CONTAINERS, LOCAL_ONLY_BLOB_CONTAINERS, QUEUES, type CosmosContainerSpec } from "../../shared/config/resources";
import { isObject, type Json } from "./arm";
import { allResources, at, azdUp, compiled, ofType, only, type Deployment, type Resource } from "./compiled";

const BLOB_CONTAINER = "Microsoft.Storage/storageAccounts/blobServices/containers";
const IMMUTABILITY = `${BLOB_CONTAINER}/immutabilityPolicies`;
/** The container the audit-anchoring timer appends to. */
const AUDIT_ANCHORS = BLOB_CONTAINERS.auditAnchors.name;

const lastSegment = (r: Resource): string => r.name.split("/").pop()!;
const storageAccount = (d: Deployment) => only(ofType(d, "Microsoft.Storage/storageAccounts"), "storage account");
const lifecycleRules = (d: Deployment): Json[] => {
  const policy = only(ofType(d, "Microsoft.Storage/storageAccounts/managementPolicies"), "lifecycle policy");
  const rules = at(policy.body, "properties.policy.rules");
  if (!Array.isArray(rules)) throw new Error("properties.policy.rules must be an array");
  return rules;
};

describe("Cosmos DB containers vs. COSMOS_CONTAINERS", () => {
  const specs: CosmosContainerSpec[] = Object.values(COSMOS_CONTAINERS);
  const containers = () => ofType(azdUp(), "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers");

  it("creates exactly the containers the code uses, in the app's database", () => {
    expect(containers().map(lastSegment).sort()).toEqual(specs.map((s) => s.name).sort());
    const database = only(ofType(azdUp(), "Microsoft.DocumentDB/databaseAccounts/sqlDatabases"), "database");
    for (const c of containers()) expect(c.name.startsWith(`${database.name}/`), c.name).toBe(true);
    expect(azdUp().outputs.COSMOS_DATABASE_NAME).toBe(lastSegment(database));
  });

  it("partitions each by the code's partition key (hash, v2), with the container id equal to its name", () => {
    for (const spec of specs) {
      const c = only(containers().filter((x) => lastSegment(x) === spec.name), `container ${spec.name}`);
      expect(at(c.body, "properties.resource.id"), spec.name).toBe(spec.name);
      expect(at(c.body, "properties.resource.partitionKey"), spec.name).toEqual({ paths: [spec.partitionKey], kind: "Hash", version: 2 });
    }
  });

  it("sets TTL exactly where the code declares defaultTtl, with the same value, and leaves it off elsewhere", () => {
    for (const spec of specs) {
      const c = only(containers().filter((x) => lastSegment(x) === spec.name), `container ${spec.name}`);
      expect(at(c.body, "properties.resource.defaultTtl") ?? undefined, `defaultTtl of '${spec.name}'`).toBe(spec.defaultTtl);
    }
  });

  it("indexes consistently and automatically (the code's queries filter and sort on ordinary fields)", () => {
    for (const c of containers()) {
      expect(at(c.body, "properties.resource.indexingPolicy.indexingMode"), c.name).toBe("consistent");
      expect(at(c.body, "properties.resource.indexingPolicy.automatic"), c.name).toBe(true);
      expect(at(c.body, "properties.resource.indexingPolicy.includedPaths"), c.name).toEqual([{ path: "/*" }]);
    }
  });

  it("keeps continuous backup on the shortest tier, which bounds how long an erased record stays restorable", () => {
    const account = only(ofType(azdUp(), "Microsoft.DocumentDB/databaseAccounts"), "Cosmos DB account");
    expect(at(account.body, "properties.backupPolicy")).toEqual({ type: "Continuous", continuousModeProperties: { tier: "Continuous7Days" } });
  });

  it("is serverless by default, and shares autoscale throughput at the database when asked", () => {
    const serverless = only(ofType(azdUp(), "Microsoft.DocumentDB/databaseAccounts"), "account");
    expect(at(serverless.body, "properties.capabilities")).toEqual([{ name: "EnableServerless" }]);
    const autoscale = azdUp({ cosmosCapacityMode: "autoscale", cosmosAutoscaleMaxThroughput: 4000 });
    expect(at(only(ofType(autoscale, "Microsoft.DocumentDB/databaseAccounts"), "account").body, "properties.capabilities")).toEqual([]);
    expect(at(only(ofType(autoscale, "Microsoft.DocumentDB/databaseAccounts/sqlDatabases"), "database").body, "properties.options")).toEqual({
      autoscaleSettings: { maxThroughput: 4000 },
    });
  });
});

describe("blob containers and queues vs. BLOB_CONTAINERS and QUEUES", () => {
  it("creates exactly the blob containers the code uses plus the deployment package container, none public", () => {
    const d = azdUp();
    const containers = ofType(d, BLOB_CONTAINER);
    const packageContainer = /\/([^/]+)$/.exec(String(at(only(ofType(d, "Microsoft.Web/sites"), "app").body, "properties.functionAppConfig.deployment.storage.value")))![1];
    expect(containers.map(lastSegment).sort()).toEqual([...Object.values(BLOB_CONTAINERS).map((c) => c.name), packageContainer].sort());
    for (const c of containers) {
      expect(c.name.startsWith(`${storageAccount(d).name}/default/`), c.name).toBe(true);
      expect(at(c.body, "properties.publicAccess"), c.name).toBe("None");
    }
  });

  it("creates every queue the code uses and its -poison twin", () => {
    const expected = Object.values(QUEUES).flatMap((q) => [q.name, `${q.name}-poison`]);
    expect(ofType(azdUp(), "Microsoft.Storage/storageAccounts/queueServices/queues").map(lastSegment).sort()).toEqual(expected.sort());
  });

  it("does not create the local-only stand-ins, nor name them anywhere in the template", () => {
    for (const { name } of Object.values(LOCAL_ONLY_BLOB_CONTAINERS)) {
      expect(allResources(azdUp()).filter((r) => r.name.split("/").includes(name)).map((r) => r.name)).toEqual([]);
      expect(compiled().text.includes(`"${name}"`) || compiled().text.includes(`'${name}'`), `'${name}' in the compiled template`).toBe(false);
    }
  });
});

describe("retention backstops", () => {
  it("deletes payload blobs and their snapshots 33 days after creation (one day after the 32-day purge)", () => {
    const payloadPrefix = `${BLOB_CONTAINERS.payloads.name}/`;
    const rules = lifecycleRules(azdUp()).filter((r) => {
      const prefixes = at(r, "definition.filters.prefixMatch");
      return Array.isArray(prefixes) && prefixes.includes(payloadPrefix);
    });
    const rule = only(rules, `lifecycle rule with prefixMatch '${payloadPrefix}'`);
    expect(at(rule, "enabled")).toBe(true);
    expect(at(rule, "type")).toBe("Lifecycle");
    expect(at(rule, "definition.filters.prefixMatch"), "the payload rule touches nothing else").toEqual([payloadPrefix]);
    expect(at(rule, "definition.filters.blobTypes")).toEqual(expect.arrayContaining(["blockBlob", "appendBlob"]));
    expect(at(rule, "definition.actions.baseBlob.delete.daysAfterCreationGreaterThan"), "payload lifecycle delete").toBe(33);
    expect(at(rule, "definition.actions.snapshot.delete.daysAfterCreationGreaterThan"), "snapshot lifecycle delete").toBe(33);
  });

  it("keeps no soft-deleted or versioned copies of blobs past the purge", () => {
    const blobService = only(ofType(azdUp(), "Microsoft.Storage/storageAccounts/blobServices"), "blob service");
    expect(at(blobService.body, "properties.deleteRetentionPolicy.enabled"), "blob soft delete").toBe(false);
    expect(at(blobService.body, "properties.isVersioningEnabled"), "blob versioning").toBe(false);
    const days = at(blobService.body, "properties.containerDeleteRetentionPolicy.days");
    expect(typeof days === "number" && days <= 7, "container soft delete at most 7 days").toBe(true);
  });

  it("creates the lifecycle policy only after the containers it filters on", () => {
    const d = azdUp();
    const policy = only(ofType(d, "Microsoft.Storage/storageAccounts/managementPolicies"), "lifecycle policy");
    const loops = new Set(ofType(d, BLOB_CONTAINER).filter((c) => lastSegment(c) === BLOB_CONTAINERS.payloads.name).map((c) => c.copy ?? c.id));
    expect(policy.dependsOn.filter((x) => loops.has(x)).length, "dependsOn the loop that creates payloads").toBe(1);
  });
});

describe("audit anchors: write-once evidence outside Cosmos DB", () => {
  const policyOf = (d: Deployment): Resource | undefined => ofType(d, IMMUTABILITY)[0];
  const anchors = (d: Deployment): Resource => only(ofType(d, BLOB_CONTAINER).filter((c) => lastSegment(c) === AUDIT_ANCHORS), AUDIT_ANCHORS);

  it(`puts exactly one time-based retention policy, on '${AUDIT_ANCHORS}', that allows appends to append blobs only`, () => {
    const d = azdUp();
    const policy = only(ofType(d, IMMUTABILITY), "immutability policy");
    expect(policy.name).toBe(`${anchors(d).name}/default`);
    expect(at(policy.body, "properties.allowProtectedAppendWrites"), "allowProtectedAppendWrites").toBe(true);
    expect(at(policy.body, "properties.allowProtectedAppendWritesAll") ?? false, "allowProtectedAppendWritesAll (block blobs)").toBe(false);
  });

  it("waits for the container it protects (created by the container loop)", () => {
    const d = azdUp();
    const container = anchors(d);
    const waitsFor = policyOf(d)!.dependsOn;
    expect(waitsFor.includes(container.copy ?? "") || waitsFor.includes(container.id), `dependsOn ${JSON.stringify(waitsFor)}`).toBe(true);
  });

  it("keeps anchors at least the 5-year evidence period (1826 days) by default (6 years), and as long as asked", () => {
    expect(at(policyOf(azdUp())!.body, "properties.immutabilityPeriodSinceCreationInDays")).toBe(2192);
    expect(at(policyOf(azdUp({ auditAnchorsRetentionDays: 3650 }))!.body, "properties.immutabilityPeriodSinceCreationInDays")).toBe(3650);
    expect(() => azdUp({ auditAnchorsRetentionDays: 0 })).toThrow(/auditAnchorsRetentionDays' is below minValue 1/);
  });

  it("leaves a locked policy alone: deployed only while auditAnchorsPolicyLocked is false, the default", () => {
    expect(compiled().template.parameters?.auditAnchorsPolicyLocked?.defaultValue).toBe(false);
    const locked = azdUp({ auditAnchorsPolicyLocked: true });
    expect(policyOf(locked), "no policy resource once locked").toBeUndefined();
    expect(anchors(locked).deployed, "the container itself stays").toBe(true);
  });

  it(`never lets a lifecycle rule touch '${AUDIT_ANCHORS}' (every rule is prefix-filtered away from it)`, () => {
    const containerPath = `${AUDIT_ANCHORS}/`;
    for (const rule of lifecycleRules(azdUp())) {
      const name = isObject(rule) ? String(rule.name) : "?";
      const prefixes = at(rule, "definition.filters.prefixMatch");
      expect(Array.isArray(prefixes) && prefixes.length > 0, `lifecycle rule ${name} has a prefixMatch (without, it applies to every container)`).toBe(true);
      for (const p of prefixes as string[]) {
        const overlaps = p.startsWith(containerPath) || containerPath.startsWith(p);
        expect(overlaps, `lifecycle rule ${name} prefix '${p}' reaches '${containerPath}'`).toBe(false);
      }
    }
  });
});

describe("custom e-mail domain", () => {
  const DOMAINS = "Microsoft.Communication/emailServices/domains";
  const linked = (d: Deployment): Json | undefined => at(only(ofType(d, "Microsoft.Communication/communicationServices"), "acs").body, "properties.linkedDomains");
  const domainIds = (d: Deployment, management: string): string[] =>
    ofType(d, DOMAINS)
      .filter((r) => at(r.body, "properties.domainManagement") === management)
      .map((r) => r.id);

  it("is not created by default: only the Azure-managed domain exists and is linked", () => {
    const d = azdUp();
    expect(domainIds(d, "CustomerManaged")).toEqual([]);
    expect(linked(d)).toEqual(domainIds(d, "AzureManaged"));
  });

  it("is created with its DoNotReply sender but not linked while unverified (Azure links verified domains only)", () => {
    const d = azdUp({ emailCustomDomainName: "notify.example.eu" });
    const custom = only(ofType(d, DOMAINS).filter((r) => at(r.body, "properties.domainManagement") === "CustomerManaged"), "custom domain");
    expect(custom.name.split("/").pop()).toBe("notify.example.eu");
    const sender = only(ofType(d, `${DOMAINS}/senderUsernames`), "sender username");
    expect(sender.name.startsWith(`${custom.name}/`)).toBe(true);
    expect(at(sender.body, "properties.username")).toBe("DoNotReply");
    expect(linked(d)).toEqual(domainIds(d, "AzureManaged"));
  });

  it("is linked beside the managed domain once verified", () => {
    const d = azdUp({ emailCustomDomainName: "notify.example.eu", emailCustomDomainVerified: true });
    expect(linked(d)).toEqual([...domainIds(d, "AzureManaged"), ...domainIds(d, "CustomerManaged")]);
  });
});
