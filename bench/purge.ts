/**
 * Purge throughput: N expired small uploads across 5 tenants, purged by the retention sweep through the local
 * runtime (the timer fans batches out to the purge-batches queue; queue workers purge them and write receipts).
 * Measured from triggering the timer until the last receipt is written, for N = 1,000 and 10,000, each in a fresh
 * service, so the scaling from one to the other can be compared (linear means the same items/s).
 */
import { CosmosClient } from "@azure/cosmos";
import { BlobServiceClient } from "@azure/storage-blob";
import { seedUploadRecord, writeSeedUploads } from "../dev/seed-uploads";
import { startRuntime } from "./runtime-process";

export interface PurgeRun {
  items: number;
  seconds: number;
  itemsPerSecond: number;
  sweeps: number;
}

const DAY = 86_400_000;

async function json<T>(res: Response): Promise<T> {
  if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

export async function benchPurge(opts: { root: string; items: number; log: (line: string) => void }): Promise<PurgeRun> {
  const rt = await startRuntime({ root: opts.root });
  const cosmos = new CosmosClient({ connectionString: rt.cosmosConnectionString, connectionPolicy: { enableEndpointDiscovery: false } });
  try {
    const admin = { authorization: `Bearer ${rt.adminKey}`, "content-type": "application/json" };
    const tenants: string[] = [];
    for (let i = 0; i < 5; i++) {
      const body = await json<{ tenant: { id: string } }>(
        await fetch(`${rt.apiUrl}/v1/admin/tenants`, {
          method: "POST",
          headers: admin,
          body: JSON.stringify({ name: `Purge bench ${i}`, contactEmail: `dpo${i}@bench.example`, supervisoryAuthority: { country: "DK" } }),
        }),
      );
      tenants.push(body.tenant.id);
    }
    const container = cosmos.database("safedata").container("uploads");
    const payloads = BlobServiceClient.fromConnectionString(rt.storageConnectionString).getContainerClient("payloads");
    const now = Date.now();
    const records = Array.from({ length: opts.items }, (_, i) =>
      // Expired 1 to 28 days ago; one in ten has a payload blob.
      seedUploadRecord(tenants[i % tenants.length]!, new Date(now - (33 + (i % 28)) * DAY - i * 1000), 32, i % 10 === 0),
    );
    opts.log(`purge: seeding ${opts.items} expired uploads`);
    await writeSeedUploads(container, payloads, records);

    const operations = cosmos.database("safedata").container("operations");
    const remaining = async () =>
      (await container.items.query<number>("SELECT VALUE COUNT(1) FROM c WHERE c.type = 'upload' AND c.status != 'expired'").fetchAll()).resources[0] ?? 0;
    const openSweeps = async () =>
      (await operations.items.query<number>("SELECT VALUE COUNT(1) FROM c WHERE c.type = 'sweep' AND IS_NULL(c.receiptsAt)").fetchAll()).resources[0] ?? 0;

    opts.log(`purge: sweeping`);
    const started = Date.now();
    let sweeps = 0;
    while ((await remaining()) > 0) {
      await json(await fetch(`${rt.apiUrl.replace(/\/api$/, "")}/admin/functions/retention-sweep?wait=true`, { method: "POST", body: "{}", headers: { "x-functions-key": rt.masterKey } }));
      sweeps++;
      while ((await openSweeps()) > 0) await new Promise((r) => setTimeout(r, 100));
      if (sweeps > 20) throw new Error("the purge did not finish in 20 sweeps");
    }
    const seconds = (Date.now() - started) / 1000;
    opts.log(`purge: ${opts.items} items in ${seconds.toFixed(1)} s (${sweeps} sweep(s))`);
    return { items: opts.items, seconds, itemsPerSecond: opts.items / seconds, sweeps };
  } finally {
    cosmos.dispose();
    await rt.stop();
  }
}
