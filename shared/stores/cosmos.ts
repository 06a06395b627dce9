/**
 * Cosmos DB access: one client per process, containers by name from shared/config/resources.ts, and the few
 * helpers every repository uses (status codes, zod-checked reads). Every query a tenant's request causes names the
 * tenant in its text (the local Cosmos server ignores the partitionKey query option); the only cross-partition
 * queries are the operators' tenant list and the timer sweeps, which no tenant request reaches.
 */
import { CosmosClient, type Container, type Database, type SqlParameter, type SqlQuerySpec } from "@azure/cosmos";
import type { z } from "zod";
import { COSMOS_CONTAINERS } from "../config/resources";
import type { Settings } from "../config/settings";
import { azureCredential } from "../identity";
import { isNotFound, statusOf } from "./sdk-errors";
import { AppError } from "../errors";

export type ContainerKey = keyof typeof COSMOS_CONTAINERS;
export type Containers = Record<ContainerKey, Container>;

export function createCosmosClient(cfg: Settings["cosmos"]): CosmosClient {
  const connectionPolicy = { enableEndpointDiscovery: cfg.kind === "identity" };
  if (cfg.kind === "connectionString") {
    return new CosmosClient({ connectionString: cfg.connectionString, connectionPolicy });
  }
  return new CosmosClient({
    endpoint: cfg.endpoint,
    aadCredentials: azureCredential(cfg.clientId),
    connectionPolicy,
  });
}

export function containersOf(database: Database): Containers {
  const out = {} as Containers;
  for (const [key, spec] of Object.entries(COSMOS_CONTAINERS) as Array<[ContainerKey, (typeof COSMOS_CONTAINERS)[ContainerKey]]>) {
    out[key] = database.container(spec.name);
  }
  return out;
}

/** Local only: what infra/ does in Azure (the app's identity has data-plane rights only and cannot create containers). */
export async function provisionCosmos(client: CosmosClient, databaseName: string): Promise<Database> {
  const { database } = await client.databases.createIfNotExists({ id: databaseName });
  for (const spec of Object.values(COSMOS_CONTAINERS)) {
    await database.containers.createIfNotExists({
      id: spec.name,
      partitionKey: { paths: [spec.partitionKey] },
      ...("defaultTtl" in spec ? { defaultTtl: spec.defaultTtl } : {}),
    });
  }
  return database;
}

export { isConflict, isNotFound, isPreconditionFailed, statusOf } from "./sdk-errors";

/** A stored document failed its schema: data was changed outside the code, or the code is older than the data. */
export class CorruptDocumentError extends Error {
  constructor(
    readonly container: string,
    readonly id: string,
    readonly issues: string,
  ) {
    super(`stored document ${container}/${id} does not match its schema: ${issues}`);
    this.name = "CorruptDocumentError";
  }
}

export function parseStored<T>(schema: z.ZodType<T>, container: string, doc: unknown): T {
  const r = schema.safeParse(doc);
  if (!r.success) {
    const id = typeof doc === "object" && doc !== null && "id" in doc ? String((doc as { id: unknown }).id) : "?";
    const issues = r.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
    throw new CorruptDocumentError(container, id, issues);
  }
  return r.data;
}

export interface StoredMeta {
  _etag: string;
}

/** The document without the etag it was read with, ready to write back. */
export function withoutMeta<T extends StoredMeta>(doc: T): Omit<T, "_etag"> {
  const { _etag: _ignored, ...rest } = doc;
  return rest;
}

/** Point read that returns undefined for 404 and parses the document with its schema. */
export async function readItem<T>(container: Container, schema: z.ZodType<T>, id: string, tenantId: string): Promise<(T & StoredMeta) | undefined> {
  try {
    const { resource } = await container.item(id, tenantId).read<Record<string, unknown>>();
    if (!resource) return undefined;
    const parsed = parseStored(schema, container.id, resource);
    return { ...parsed, _etag: String(resource._etag) };
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

export interface Page<T> {
  items: T[];
  /** Opaque; pass back to get the next page. Absent on the last page. */
  cursor?: string;
}

/**
 * A store cursor is the Cosmos continuation token itself. It reaches callers only sealed by the HTTP layer
 * (shared/http/cursors.ts), which verifies every cursor that comes back before it gets here; this check is the last
 * line before the SDK puts it in a request header: printable ASCII only, bounded, so no byte can make the client
 * library fail before it sends anything.
 */
const CONTINUATION = /^[\x20-\x7e]{1,16384}$/;

/** The cursor for the page after this one (undefined on the last page). */
export function encodeCursor(token: string | undefined): string | undefined {
  return token ? token : undefined;
}

/** The continuation token of a store cursor. Throws AppError invalid-parameter for anything that cannot be one. */
export function decodeCursor(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  if (!CONTINUATION.test(cursor)) throw new AppError("invalid-parameter", "cursor is not a cursor this list returned");
  return cursor;
}

const TENANT_FILTER = /c\.tenantId\s*=\s*@tenantId/;

function assertTenantScoped(query: SqlQuerySpec): void {
  if (!TENANT_FILTER.test(query.query)) throw new Error("tenant-scoped queries must filter on c.tenantId = @tenantId");
}

/**
 * Every row of a tenant-scoped query, each checked with `schema`. The query text must filter on c.tenantId itself
 * (the local Cosmos server ignores the partition key option). For queries whose result is bounded (TOP, COUNT).
 */
export async function queryAll<T>(container: Container, schema: z.ZodType<T>, query: SqlQuerySpec, tenantId: string): Promise<T[]> {
  assertTenantScoped(query);
  const { resources } = await container.items.query<unknown>(query, { partitionKey: tenantId }).fetchAll();
  return resources.map((d) => parseStored(schema, container.id, d));
}

/**
 * Every row of a query over all tenants, each checked with `schema`. Only catch-up sweeps use these, through store
 * methods named `...AcrossTenants`; no path that serves a tenant's request calls one.
 */
export async function crossPartition<T>(container: Container, schema: z.ZodType<T>, query: SqlQuerySpec): Promise<T[]> {
  const { resources } = await container.items.query<unknown>(query).fetchAll();
  return resources.map((d) => parseStored(schema, container.id, d));
}

/** `IN (...)` over constant values as query parameters: `names` goes into the text, `parameters` beside it. */
export function inList(prefix: string, values: readonly string[]): { names: string; parameters: SqlParameter[] } {
  const parameters = values.map((value, i) => ({ name: `@${prefix}${i}`, value }));
  return { names: parameters.map((p) => p.name).join(", "), parameters };
}

/** One page of a tenant-scoped query. The query text must filter on c.tenantId itself. */
export async function queryPage<T>(
  container: Container,
  schema: z.ZodType<T>,
  query: SqlQuerySpec,
  tenantId: string,
  limit: number,
  cursor: string | undefined,
): Promise<Page<T>> {
  assertTenantScoped(query);
  return fetchPage(container, schema, query, { partitionKey: tenantId }, limit, cursor);
}

/**
 * One page of any query, with an opaque cursor. Cross-partition queries are for operators and timer sweeps only;
 * tenant requests go through queryPage.
 */
export async function fetchPage<T>(
  container: Container,
  schema: z.ZodType<T>,
  query: SqlQuerySpec,
  options: { partitionKey?: string },
  limit: number,
  cursor: string | undefined,
): Promise<Page<T>> {
  const iterator = container.items.query<Record<string, unknown>>(query, {
    ...options,
    maxItemCount: limit,
    continuationToken: decodeCursor(cursor),
  });
  let fetched;
  try {
    fetched = await iterator.fetchNext();
  } catch (err) {
    if (cursor !== undefined && statusOf(err) === 400) throw new AppError("invalid-parameter", "cursor is not a cursor this list returned");
    throw err;
  }
  const { resources, continuationToken } = fetched;
  return {
    items: resources.map((d) => parseStored(schema, container.id, d)),
    cursor: resources.length > 0 ? encodeCursor(continuationToken) : undefined,
  };
}
