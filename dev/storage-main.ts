/**
 * Runs the embedded storage in its own process for `npm start`, so the Functions runtime's memory is its own
 * and Azurite's in-memory blobs do not count against it. Talks to its parent over IPC and exits with it.
 */
import { startEmbeddedStorage } from "./embedded-storage";

const [blobPort, queuePort, cosmosPort] = process.argv.slice(2).map(Number);

process.on("disconnect", () => process.exit(0));

startEmbeddedStorage({ blobPort, queuePort, cosmosPort })
  .then((storage) => {
    process.send?.({ ready: true, blobPort: storage.blobPort, queuePort: storage.queuePort, cosmosPort: storage.cosmosPort });
    const stop = () => {
      void storage.stop().finally(() => process.exit(0));
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", () => undefined); // the parent decides when to stop
  })
  .catch((err: Error & { code?: string }) => {
    process.send?.({ ready: false, error: err.message, inUse: err.code === "EADDRINUSE" || /EADDRINUSE/.test(err.message) });
    process.exit(1);
  });
