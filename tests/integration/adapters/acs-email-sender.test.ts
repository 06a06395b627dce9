import type { TokenCredential } from "@azure/core-auth";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "@jest/globals";
import type { EmailMessage } from "../../../shared/email/email-sender";
import {
  AcsEmailSender,
  EmailSendError,
  InvalidEmailMessageError,
  nameBasedUuid,
  operationIdFor,
} from "../../../shared/email/acs-email-sender";
import { startAcsEmailFake, type AcsEmailFake } from "../../fakes/acs-email-fake";

const credential: TokenCredential = { getToken: async () => ({ token: "t", expiresOnTimestamp: Date.now() + 3_600_000 }) };
const SENDER = "DoNotReply@notify.safedata.example";
const RECIPIENT = "subject.person@example.org";
const ANY_ADDRESS = /[\w.+-]+@[\w-]+\.[\w.-]+/;

let fake: AcsEmailFake;

function sender(): AcsEmailSender {
  return new AcsEmailSender(fake.url, credential, SENDER, {
    pollIntervalMs: 5,
    timeoutMs: 10_000,
    clientOptions: { tlsOptions: { ca: fake.ca }, retryOptions: { maxRetries: 0 } },
  });
}

function message(messageId: string, extra: Partial<EmailMessage> = {}): EmailMessage {
  return {
    messageId,
    to: [RECIPIENT],
    subject: "Information about a personal data breach",
    text: "What happened, which data, what we are doing.",
    html: "<p>What happened, which data, what we are doing.</p>",
    ...extra,
  };
}

/** Everything an error exposes when logged or serialised. */
function everythingIn(err: unknown): string {
  const e = err as Error;
  return [e.message, e.stack, String(e), JSON.stringify(e), JSON.stringify(Object.entries(e))].join("\n");
}

beforeAll(async () => {
  fake = await startAcsEmailFake({ runningPolls: 2 });
});
afterAll(async () => {
  await fake?.stop();
});
beforeEach(() => fake.reset());

describe("AcsEmailSender against the ACS email fake", () => {
  it("sends the message and waits for the operation to succeed", async () => {
    const result = await sender().send(message("breach-1-notice"));
    expect(result.providerMessageId).toBe(operationIdFor("breach-1-notice"));
    expect(fake.delivered).toHaveLength(1);
    expect(fake.delivered[0]).toMatchObject({
      senderAddress: SENDER,
      to: [RECIPIENT],
      subject: "Information about a personal data breach",
      plainText: "What happened, which data, what we are doing.",
      html: "<p>What happened, which data, what we are doing.</p>",
    });
    expect(fake.operations.get(result.providerMessageId)).toMatchObject({ status: "Succeeded", polls: 3 });
    const post = fake.requests.find((r) => r.method === "POST");
    expect(post).toMatchObject({ authorized: true, operationIdHeader: operationIdFor("breach-1-notice"), status: 202 });
  });

  it("sends plain text only, to several recipients", async () => {
    await sender().send(message("dsr-7-answer", { html: undefined, to: [RECIPIENT, "second@example.org"] }));
    expect(fake.delivered[0]?.to).toEqual([RECIPIENT, "second@example.org"]);
    expect(fake.delivered[0]?.html).toBeUndefined();
  });

  it("sends once when the same messageId is sent twice (a retry after a crash)", async () => {
    const first = await sender().send(message("breach-2-notice"));
    const again = await sender().send(message("breach-2-notice"));
    expect(again.providerMessageId).toBe(first.providerMessageId);
    expect(fake.delivered).toHaveLength(1);
    expect(fake.operations.get(first.providerMessageId)?.submissions).toBe(2);

    await sender().send(message("breach-3-notice"));
    expect(fake.delivered).toHaveLength(2);
  });

  it("sends once when the service answers a repeated operation id with 409", async () => {
    fake.setDuplicateOperation("conflict");
    const first = await sender().send(message("breach-4-notice"));
    const again = await sender().send(message("breach-4-notice"));
    expect(again.providerMessageId).toBe(first.providerMessageId);
    expect(fake.delivered).toHaveLength(1);
    expect(fake.requests.filter((r) => r.method === "POST").map((r) => r.status)).toEqual([202, 409]);
  });

  it("a failed operation is an EmailSendError with the service code and no address in it", async () => {
    fake.failSends("EmailDropped");
    const err = await sender()
      .send(message("breach-5-notice"))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EmailSendError);
    expect(err).toMatchObject({ code: "EmailDropped", retryable: false, messageId: "breach-5-notice" });
    // The fake's failure message quotes the recipient; the error must not.
    const op = fake.operations.get(operationIdFor("breach-5-notice"));
    expect(op?.error?.message).toContain(RECIPIENT);
    expect(everythingIn(err)).not.toContain(RECIPIENT);
    expect(everythingIn(err)).not.toMatch(ANY_ADDRESS);
    expect(fake.delivered).toHaveLength(0);
  });

  it("a rejected request is an EmailSendError that says whether to retry, with no address in it", async () => {
    fake.rejectNextSend(400, "InvalidRecipient");
    const bad = await sender()
      .send(message("breach-6-notice"))
      .catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(EmailSendError);
    expect(bad).toMatchObject({ statusCode: 400, retryable: false });
    expect(everythingIn(bad)).not.toContain(RECIPIENT);
    expect(everythingIn(bad)).not.toMatch(ANY_ADDRESS);

    fake.rejectNextSend(503, "ServiceUnavailable");
    const outage = await sender()
      .send(message("breach-6-notice"))
      .catch((e: unknown) => e);
    expect(outage).toMatchObject({ name: "EmailSendError", statusCode: 503, retryable: true });

    // The retry goes through, once.
    await sender().send(message("breach-6-notice"));
    expect(fake.delivered).toHaveLength(1);
  });

  it("gives up waiting after the timeout with a retryable error; the retry follows the same operation", async () => {
    const slow = await startAcsEmailFake({ runningPolls: Number.MAX_SAFE_INTEGER });
    try {
      const s = new AcsEmailSender(slow.url, credential, SENDER, {
        pollIntervalMs: 5,
        timeoutMs: 200,
        clientOptions: { tlsOptions: { ca: slow.ca }, retryOptions: { maxRetries: 0 } },
      });
      const err = await s.send(message("breach-8-notice")).catch((e: unknown) => e);
      expect(err).toMatchObject({ name: "EmailSendError", code: "Timeout", retryable: true });
      await s.send(message("breach-8-notice")).catch(() => undefined);
      expect(slow.delivered).toHaveLength(1);
      expect(slow.operations.get(operationIdFor("breach-8-notice"))?.submissions).toBe(2);
    } finally {
      await slow.stop();
    }
  });

  it("refuses malformed messages before calling the service", async () => {
    const s = sender();
    for (const bad of [
      message("../escape"),
      message("ok-id", { to: [] }),
      message("ok-id", { to: ["not an address"] }),
      message("ok-id", { subject: "two\nlines" }),
      message("ok-id", { text: "" }),
    ]) {
      const err = await s.send(bad).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidEmailMessageError);
      expect(everythingIn(err)).not.toContain("not an address");
    }
    expect(fake.requests).toHaveLength(0);
  });

  it("derives operation ids as RFC 9562 version 5 UUIDs", () => {
    // The RFC's own example: the DNS namespace and "www.example.com".
    expect(nameBasedUuid("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "www.example.com")).toBe("2ed6657d-e927-568b-95e1-2665a8aea6a2");
    expect(operationIdFor("a")).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(operationIdFor("a")).toBe(operationIdFor("a"));
    expect(operationIdFor("a")).not.toBe(operationIdFor("b"));
  });
});
