/**
 * The deadline watch: a timer that queues every due milestone's notice once, and the worker that sends it through
 * the clock that owns it (see shared/usecases/deadlines.ts).
 */
import { app, type Timer } from "@azure/functions";
import { QUEUES } from "../shared/config/resources";
import { SETTING } from "../shared/config/settings";
import { invocationLog } from "../shared/observability";
import { queueHandler } from "../shared/queue-handler";
import { services } from "../shared/services";
import { DEADLINE_SWEEP_SCHEDULE, handleDeadlineNotice, runDeadlineWatch } from "../shared/usecases/deadlines";
import { deadlineNoticeMessage } from "../shared/usecases/messages";

app.timer("deadline-watch", {
  schedule: DEADLINE_SWEEP_SCHEDULE,
  handler: async (timer: Timer, context) => {
    await runDeadlineWatch(services(), { pastDue: timer.isPastDue, log: invocationLog(context) });
  },
});

app.storageQueue("deadline-notice", {
  queueName: QUEUES.deadlines.name,
  connection: SETTING.storageConnectionString,
  handler: queueHandler(QUEUES.deadlines.name, deadlineNoticeMessage, async (msg, { services, log }) => {
    const outcome = await handleDeadlineNotice(services, msg, log);
    log.info("deadline.notice", { tenantId: msg.tenantId, milestoneId: msg.milestoneId, outcome });
  }),
});
