/** Sends the e-mails other functions queue (first-download notices), once each. */
import { app } from "@azure/functions";
import { QUEUES } from "../shared/config/resources";
import { SETTING } from "../shared/config/settings";
import { queueHandler } from "../shared/queue-handler";
import { sendFirstDownloadNotice } from "../shared/usecases/notifications";
import { notificationMessage } from "../shared/usecases/messages";

app.storageQueue("notifications", {
  queueName: QUEUES.notifications.name,
  connection: SETTING.storageConnectionString,
  handler: queueHandler(QUEUES.notifications.name, notificationMessage, async (msg, { services, log }) => {
    const outcome = await sendFirstDownloadNotice(services, msg);
    log.info("notification.processed", { kind: msg.kind, tenantId: msg.tenantId, uploadId: msg.uploadId, outcome });
  }),
});
