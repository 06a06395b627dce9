/**
 * A plain pass-through proxy in front of the embedded Azurite: the least any HTTP service in front of the same storage
 * must do. `GET /<container>/<blob>` downloads the blob with the options the service passes and pipes the body to the
 * response as it arrives. No decryption, no authentication, no Functions host.
 *
 * Run as its own process (`node dist/bench/passthrough-server.js`, see passthrough-process.ts) so that its CPU and
 * memory can be read from /proc apart from the benchmark's. Settings (environment):
 * - PASSTHROUGH_STORAGE: the storage connection string (required)
 *
 * It listens on 127.0.0.1 on a port the system picks and prints `passthrough listening on <port>` once it accepts
 * requests. SIGINT or SIGTERM stops it.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { pipeline } from "node:stream/promises";
import { BlobServiceClient, RestError } from "@azure/storage-blob";

const connectionString = process.env.PASSTHROUGH_STORAGE;
if (!connectionString) {
  console.error("PASSTHROUGH_STORAGE is not set");
  process.exit(2);
}
const blobs = BlobServiceClient.fromConnectionString(connectionString);

async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const parts = (req.url ?? "").split("?", 1)[0]!.split("/").filter(Boolean).map(decodeURIComponent);
  if (req.method !== "GET" || parts.length !== 2) {
    res.writeHead(404, { "content-type": "text/plain" }).end("GET /<container>/<blob>\n");
    return;
  }
  const [container, blob] = parts as [string, string];
  let download;
  try {
    download = await blobs.getContainerClient(container).getBlobClient(blob).download(0, undefined, { maxRetryRequests: 3 });
  } catch (err) {
    const status = err instanceof RestError && err.statusCode === 404 ? 404 : 502;
    res.writeHead(status, { "content-type": "text/plain" }).end(`${(err as Error).message}\n`);
    return;
  }
  const body = download.readableStreamBody;
  if (!body || download.contentLength === undefined) {
    res.writeHead(502, { "content-type": "text/plain" }).end("storage answered without a body or a length\n");
    return;
  }
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(download.contentLength) });
  // A failure midway cannot change the status any more; pipeline destroys the response, and the client sees it cut.
  await pipeline(body, res);
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err: Error) => {
    console.error(`passthrough: ${req.method} ${req.url}: ${err.message}`);
    if (!res.headersSent) res.writeHead(500).end();
    else res.destroy(err);
  });
});

server.listen(0, "127.0.0.1", () => {
  console.log(`passthrough listening on ${(server.address() as AddressInfo).port}`);
});

const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2_000).unref();
};
process.once("SIGINT", stop);
process.once("SIGTERM", stop);
