/**
 * Proving that the person who asks is the person the request is about (GDPR Art. 12(6): the controller may ask for
 * the information needed to confirm the identity), by control of the e-mail address:
 *
 * - the `verification-email` step e-mails the person, in the tenant's language, a one-time code (CODE_DIGITS digits
 *   from a CSPRNG, valid DSR_CODE_TTL_MINUTES) and a single-use link (256 random bits, valid until the verification
 *   window closes). Only a keyed hash of the code and the SHA-256 of the link's secret are stored. If the send fails,
 *   or a worker dies between storing the hashes and recording the e-mail as sent, the next attempt sends a fresh code
 *   and link (the plain values exist nowhere to send again); only codes and links whose e-mail was recorded as sent
 *   are accepted (sentIssues), so no code that nobody was sent stays valid and open to guessing;
 * - the tenant relays the code (`verifyCode`): compared in constant time with every code issued; at most
 *   MAX_WRONG_TRIES wrong ones, then verification-failed; an expired one says so and does not count;
 * - or the person opens the link (`verificationPage`): GET shows a page, one POST confirms; expired, used and forged
 *   links get a page that says so and nothing about the request or the person;
 * - or the tenant vouches (`vouchForSubject`) with a statement: recorded as the tenant's (its key is the actor of the
 *   audit entry, which carries a keyed digest of the statement; the text itself is encrypted on the request).
 * The tenant may ask for a new e-mail MAX_RESENDS times (`resendVerification`); asking again while an e-mail is still
 * on its way neither counts nor queues another.
 */
import { DEFAULT_LANGUAGE } from "../domain/language";
import {
  codeSchema,
  DSR_TYPE_LABELS,
  formatVerificationToken,
  MAX_RESENDS,
  MAX_WRONG_TRIES,
  newCode,
  newTokenSecret,
  parseVerificationToken,
} from "../domain/subject-requests";
import { formatDate, formatInstant } from "../domain/time";
import { AppError } from "../errors";
import type { Log } from "../observability";
import type { Services } from "../services";
import { withoutMeta } from "../stores/cosmos";
import type { IssuedVerification, RequestDoc, StoredRequest, VerificationMethod } from "../stores/subject-request-store";
import { recordAudit, recordAuditOnce, type TenantCaller } from "./audit-trail";
import { codeHasher, matchingIndexes, openRequestField, sealRequestField, statementDigest, tokenHash, unwrapRequestKey } from "./subject-request-keys";
import { changeRequest, defineStep, saveRequest, withStep, withTransition, type ByWhom } from "./subject-request-steps";
import { summaryOf, tenantZone, type RequestSummary } from "./subject-request-views";

const notFound = () => new AppError("not-found", "no subject request with this id");
/** Verification e-mails one request may issue, crash re-sends included (4 are asked for at most). */
const MAX_ISSUED = 20;

/** The public page a link opens (under /api). */
export const verificationPath = (token: string) => `/api/public/subject-request-verification/${token}`;

/**
 * The issues whose e-mail was recorded as sent: the only codes and links accepted. A code whose send failed, or whose
 * worker died before recording it, reached nobody (or is followed by a fresh one that did), and keeping it valid would
 * only give a guesser more codes to hit (each wrong try is compared with every accepted code).
 */
const sentIssues = (issued: readonly IssuedVerification[]) => issued.filter((i) => i.sentAt !== null);

/** `doc` verified by `method`: the state, the verification record and the `start` step. Pure. */
function verified(doc: RequestDoc, method: VerificationMethod, by: ByWhom, now: Date, details: Record<string, string | number>): RequestDoc {
  const moved = withTransition(doc, "verified", by, now, { method, ...details });
  return withStep({ ...moved, verification: { ...moved.verification, method, verifiedAt: now.toISOString() } }, "start", now);
}

// --- the e-mail -----------------------------------------------------------------------------------------------------

/**
 * The `verification-email` step: while the request awaits verification and fewer e-mails went out than were asked
 * for, issues a code and a link (hashes stored first), e-mails them (message id per issue: a retry of the same issue
 * is not sent twice), records it as sent. See the module comment for a worker that dies in between.
 */
async function sendVerificationEmail(s: Services, req: StoredRequest): Promise<void> {
  for (let round = 0; round < 10; round++) {
    const doc = await s.subjectRequests.get(req.tenantId, req.id);
    if (!doc || doc.status !== "awaiting-verification" || doc.verification.sent >= doc.verification.requested) return;
    const key = await unwrapRequestKey(s, doc);
    if (!key || !doc.personal) return;
    if (doc.verification.issued.length >= MAX_ISSUED) throw new Error("too many verification e-mails were issued for this request");
    const now = s.clock.now();
    const gen = Math.max(0, ...doc.verification.issued.map((i) => i.gen)) + 1;
    const code = newCode();
    const secret = newTokenSecret();
    const hash = await codeHasher(s, doc.tenantId);
    const issued: IssuedVerification = {
      gen,
      codeHash: hash(doc.id, gen, code),
      codeExpiresAt: new Date(now.getTime() + s.settings.dsrCodeTtlMinutes * 60_000).toISOString(),
      tokenHash: tokenHash(secret),
      linkExpiresAt: doc.verification.verifyBy,
      issuedAt: now.toISOString(),
      sentAt: null,
      usedAt: null,
    };
    const asked = doc.verification.requested;
    const stored = await saveRequest(s, { ...withoutMeta(doc), verification: { ...doc.verification, issued: [...doc.verification.issued, issued] } }, doc._etag);
    if (!stored) continue;

    const tenant = await s.tenants.get(doc.tenantId);
    const language = tenant?.language ?? DEFAULT_LANGUAGE;
    const timeZone = tenant?.timeZone ?? "Europe/Copenhagen";
    const link = doc.verification.linkOrigin.replace(/\/+$/, "") + verificationPath(formatVerificationToken(doc.tenantId, doc.id, secret));
    const message = s.templates.render("dsr-verification", language, {
      controllerName: tenant?.name ?? "safedata",
      requestId: doc.id,
      requestType: DSR_TYPE_LABELS[language][doc.requestType],
      receivedDate: formatDate(new Date(doc.receivedAt), language, timeZone),
      code,
      codeMinutes: s.settings.dsrCodeTtlMinutes,
      codeExpiresAt: formatInstant(new Date(issued.codeExpiresAt), language, timeZone),
      link,
      linkExpiresAt: formatDate(new Date(issued.linkExpiresAt), language, timeZone),
    });
    const to = openRequestField(key, doc.tenantId, doc.id, "email", doc.personal.email);
    await s.email.send({ messageId: `dsr-verification-${doc.id}-${gen}`, to: [to], ...message });
    const sentAt = s.clock.now().toISOString();
    await changeRequest(s, doc.tenantId, doc.id, (fresh) => ({
      ...withoutMeta(fresh),
      verification: {
        ...fresh.verification,
        sent: Math.max(fresh.verification.sent, asked),
        issued: fresh.verification.issued.map((i) => (i.gen === gen ? { ...i, sentAt } : i)),
      },
    }));
    await recordAuditOnce(s, doc.tenantId, { actor: "system:subject-requests" }, "subject-request.verification-sent", { type: "subject-request", id: doc.id }, { gen, codeMinutes: s.settings.dsrCodeTtlMinutes }, `dsr-verification:${doc.id}:${gen}`);
  }
}

defineStep("verification-email", sendVerificationEmail, (doc) => doc.status === "awaiting-verification" && doc.verification.sent < doc.verification.requested);

// --- the tenant relays the code ---------------------------------------------------------------------------------------

const notAwaiting = (doc: RequestDoc) =>
  new AppError(
    "conflict",
    doc.status === "verification-failed"
      ? `verification failed after ${MAX_WRONG_TRIES} wrong codes; the person can still use the link, the tenant can vouch, or reject the request`
      : `the request is ${doc.status}; it is not waiting for a code`,
  );

/**
 * POST …/verify: the code the person gave the tenant. A code issued for this request and not expired verifies it (any
 * of the e-mails' codes). An expired code is refused (verification-failed) without counting as a wrong try; a wrong
 * one counts, and the MAX_WRONG_TRIES-th turns the request verification-failed. Errors: not-found; conflict (not
 * awaiting verification: already verified, failed, closed); verification-failed (wrong or expired).
 */
export async function verifyCode(s: Services, caller: TenantCaller, id: string, code: string): Promise<RequestSummary> {
  if (!codeSchema.safeParse(code).success) throw new AppError("validation-failed", "code: must be the 6-digit code from the e-mail", { errors: [{ path: "code", message: "must be the 6-digit code from the e-mail" }] });
  const { timeZone } = await tenantZone(s, caller.tenantId);
  let outcome: "verified" | "expired" | { wrong: number } = "expired";
  const hash = await codeHasher(s, caller.tenantId);
  const r = await changeRequest(s, caller.tenantId, id, (doc) => {
    if (doc.status !== "awaiting-verification") throw notAwaiting(doc);
    const now = s.clock.now();
    const issued = sentIssues(doc.verification.issued);
    // Every code that was sent is compared, each in constant time, whatever matched first.
    const matches = issued.filter((i) => matchingIndexes(hash(doc.id, i.gen, code), [i.codeHash]).length > 0);
    const live = matches.find((i) => Date.parse(i.codeExpiresAt) > now.getTime());
    if (live) {
      outcome = "verified";
      return verified(withoutMeta(doc), "code", caller, now, { gen: live.gen });
    }
    if (matches.length > 0) {
      outcome = "expired";
      return undefined;
    }
    const wrong = doc.verification.wrongTries + 1;
    outcome = { wrong };
    const counted: RequestDoc = { ...withoutMeta(doc), verification: { ...doc.verification, wrongTries: wrong } };
    return wrong >= MAX_WRONG_TRIES ? withTransition(counted, "verification-failed", caller, now, { wrongTries: wrong }) : counted;
  });
  if (!r.changed && !r.current) throw notFound();
  const result = outcome as "verified" | "expired" | { wrong: number };
  if (result === "expired") {
    const seen = r.changed ? r.after : r.current;
    const resendsLeft = seen ? seen.verification.resends < MAX_RESENDS : true;
    throw new AppError(
      "verification-failed",
      resendsLeft
        ? "the code has expired; ask for a new e-mail (POST …/resend) or let the person use the link"
        : `the code has expired and the e-mail was sent again ${MAX_RESENDS} times already; let the person use the link, vouch for the person, or reject the request`,
    );
  }
  if (result !== "verified") {
    const left = MAX_WRONG_TRIES - result.wrong;
    await recordAudit(s, caller.tenantId, caller, "subject-request.code-rejected", { type: "subject-request", id }, { wrongTries: result.wrong, triesLeft: Math.max(0, left) });
    throw new AppError(
      "verification-failed",
      left > 0 ? `the code is not right; ${left} ${left === 1 ? "try" : "tries"} left` : `the code is not right; after ${MAX_WRONG_TRIES} wrong codes the request is verification-failed`,
    );
  }
  return summaryOf(r.changed ? r.after : r.current!, s.clock.now(), timeZone);
}

/**
 * POST …/vouch: the tenant confirms the person's identity by its own means, with a statement (encrypted on the
 * request; its keyed digest in the audit entry, whose actor is the tenant's key). Errors: not-found; conflict (not
 * awaiting verification, or failed).
 */
export async function vouchForSubject(s: Services, caller: TenantCaller, id: string, statement: string): Promise<RequestSummary> {
  const { timeZone } = await tenantZone(s, caller.tenantId);
  const digest = await statementDigest(s, caller.tenantId, id, statement);
  const r = await changeRequest(s, caller.tenantId, id, async (doc) => {
    if (doc.status !== "awaiting-verification" && doc.status !== "verification-failed") throw new AppError("conflict", `the request is ${doc.status}; only an unverified request can be vouched for`);
    const key = await unwrapRequestKey(s, doc);
    if (!key || !doc.personal) throw new AppError("conflict", "the request's personal fields were erased");
    const now = s.clock.now();
    const next = verified(withoutMeta(doc), "vouch", caller, now, { statementDigest: digest });
    return { ...next, personal: { ...next.personal!, vouchStatement: sealRequestField(key, doc.tenantId, doc.id, "vouchStatement", statement) } };
  });
  if (!r.changed) throw notFound();
  return summaryOf(r.after, s.clock.now(), timeZone);
}

/**
 * POST …/resend: another verification e-mail (a new code and link; the earlier ones keep working until they expire).
 * At most MAX_RESENDS. The link points at the origin this call was made on. While an e-mail asked for earlier has not
 * gone out yet, a resend changes nothing and is not counted (that e-mail, when it goes out, is the new one): the
 * answer shows the request as it is. Errors: not-found; conflict (not awaiting verification, or no resends left).
 */
export async function resendVerification(s: Services, caller: TenantCaller, id: string, linkOrigin: string): Promise<RequestSummary> {
  const { timeZone } = await tenantZone(s, caller.tenantId);
  const r = await changeRequest(s, caller.tenantId, id, (doc) => {
    if (doc.status !== "awaiting-verification") throw notAwaiting(doc);
    // An e-mail is still on its way: it will carry a new code and link; asking again adds nothing.
    if (doc.verification.sent < doc.verification.requested) return undefined;
    if (doc.verification.resends >= MAX_RESENDS) throw new AppError("conflict", `the verification e-mail was sent again ${MAX_RESENDS} times already; vouch for the person or reject the request`);
    const now = s.clock.now();
    const v = doc.verification;
    return withStep({ ...withoutMeta(doc), verification: { ...v, resends: v.resends + 1, requested: v.requested + 1, linkOrigin: linkOrigin.slice(0, 300) } }, "verification-email", now);
  });
  if (!r.changed) {
    if (!r.current) throw notFound();
    return summaryOf(r.current, s.clock.now(), timeZone);
  }
  await recordAudit(s, caller.tenantId, caller, "subject-request.resend-requested", { type: "subject-request", id }, { resends: r.after.verification.resends });
  return summaryOf(r.after, s.clock.now(), timeZone);
}

// --- the person opens the link --------------------------------------------------------------------------------------

export type PageState = "confirm" | "done" | "already" | "expired" | "invalid";

export interface VerificationPage {
  status: 200 | 403 | 410;
  state: PageState;
  html: string;
}

/** A link that can no longer confirm anything (used, or its request verified, closed or expired) is gone: 410. */
const STATUS: Record<PageState, VerificationPage["status"]> = { confirm: 200, done: 200, already: 410, expired: 410, invalid: 403 };

/**
 * GET (a page: what confirming means, one button) and POST (confirms) of a verification link. A link that is
 * malformed, forged, or names nothing (403), that has expired or belongs to a request closed without verification
 * (410), or that was used, or whose request was verified otherwise (410, a page saying the request is confirmed), gets
 * a page that says so and nothing about the request or the person. The page is in the tenant's language (English when the link
 * names no tenant), every value escaped, no script.
 */
export async function verificationPage(s: Services, token: string, method: "GET" | "POST", requestId: string, log?: Log): Promise<VerificationPage> {
  const parsed = parseVerificationToken(token);
  const tenant = parsed ? await s.tenants.get(parsed.tenantId) : undefined;
  const language = tenant?.language ?? DEFAULT_LANGUAGE;
  const timeZone = tenant?.timeZone ?? "Europe/Copenhagen";
  const render = (state: PageState, doc?: RequestDoc): VerificationPage => {
    // Only a link that works says what it is for; the others say nothing about the request or the person.
    const details =
      doc && (state === "confirm" || state === "done")
        ? { controllerName: tenant?.name ?? "safedata", requestType: DSR_TYPE_LABELS[language][doc.requestType], receivedDate: formatDate(new Date(doc.receivedAt), language, timeZone) }
        : false;
    const html = s.pages.render("dsr-verification", language, {
      confirm: state === "confirm" ? details : false,
      done: state === "done" ? details : false,
      already: state === "already",
      expired: state === "expired",
      invalid: state === "invalid",
    });
    return { status: STATUS[state], state, html };
  };
  if (!parsed || !tenant) return render("invalid");
  const candidate = tokenHash(parsed.secret);
  let page: VerificationPage | undefined;
  const r = await changeRequest(s, parsed.tenantId, parsed.requestId, (doc) => {
    const now = s.clock.now();
    const issued = sentIssues(doc.verification.issued);
    const matched = matchingIndexes(candidate, issued.map((i) => i.tokenHash)).map((n) => issued[n]!);
    const link = matched[0];
    if (!link || !doc.dataKey) {
      page = render("invalid");
      return undefined;
    }
    if (doc.verification.verifiedAt) {
      page = render("already");
      return undefined;
    }
    const waiting = doc.status === "awaiting-verification" || doc.status === "verification-failed";
    if (!waiting || Date.parse(link.linkExpiresAt) <= now.getTime()) {
      page = render("expired");
      return undefined;
    }
    if (method === "GET") {
      page = render("confirm", doc);
      return undefined;
    }
    page = render("done", doc);
    const next = verified(withoutMeta(doc), "link", { actor: "subject", requestId }, now, { gen: link.gen });
    return { ...next, verification: { ...next.verification, issued: next.verification.issued.map((i) => (i.gen === link.gen ? { ...i, usedAt: now.toISOString() } : i)) } };
  }, { log });
  if (!r.changed && !r.current) return render("invalid");
  return page ?? render("invalid");
}
