/**
 * Audit stores that fail the way a real one can, for the paths a use case takes when its entry is not confirmed. They
 * wrap the real store on the real local Cosmos server (nothing of the code under test is replaced):
 * - "unwritable": every append throws, nothing is written; reads work (the entry is known to be absent);
 * - "answer-lost": the append is written, then throws, as when its answer is lost after the store's own retries;
 * - "unreachable": appends and reads both fail (the log cannot be read to learn what happened).
 */
import type { Container } from "@azure/cosmos";
import type { Clock } from "../../shared/domain/clock";
import { AuditStore } from "../../shared/stores/audit-store";

export type AuditFault = "unwritable" | "answer-lost" | "unreachable";

class FaultyAuditStore extends AuditStore {
  constructor(
    container: Container,
    clock: Clock,
    private readonly fault: "unwritable" | "answer-lost",
  ) {
    super(container, clock);
  }
  override async append(...args: Parameters<AuditStore["append"]>): ReturnType<AuditStore["append"]> {
    if (this.fault === "answer-lost") await super.append(...args);
    throw new Error("audit append: no answer (request timed out)");
  }
  override async appendOnceAt(...args: Parameters<AuditStore["appendOnceAt"]>): ReturnType<AuditStore["appendOnceAt"]> {
    if (this.fault === "answer-lost") await super.appendOnceAt(...args);
    throw new Error("audit append: no answer (request timed out)");
  }
}

/** An audit store on `container` (the app's audit container) with `fault`. */
export function faultyAudit(container: Container, clock: Clock, fault: AuditFault): AuditStore {
  if (fault === "unreachable") return new AuditStore(container.database.container("no-such-container"), clock);
  return new FaultyAuditStore(container, clock, fault);
}
