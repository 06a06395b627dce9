/**
 * Withdrawal as easy as consent (GDPR Art. 7(3)): a tenant gets a signed link for one subject (one purpose or all) to
 * put in its e-mails and pages; the person opens it (no key, no account), sees a short page in the tenant's language,
 * and one POST withdraws.
 *
 * - The token (shared/domain/consent.ts) names the tenant, the secret version, the subject's opaque id (no address),
 *   the purpose, the link's id and its expiry, signed with HMAC-SHA256 under the tenant's link secret; it is compared
 *   in constant time. Secrets are per tenant, encrypted under its KEK, versioned: a rotation keeps older versions
 *   verifying until every link they signed has expired (CONSENT_LINK_DAYS), so rotating never makes withdrawing harder.
 * - GET shows the confirmation page (e-mail scanners that fetch links withdraw nothing); POST withdraws, exactly once
 *   per link however often it is sent: a marker keyed by the token's hash is claimed first, and the events have ids
 *   derived from it, so a retry after a failure finishes the same withdrawal instead of making another. The events are
 *   audited as the subject's own (`subject`), and the tenant's webhook gets `consent.withdrawn`.
 * - Each link may be used 20 times an hour (GET and POST together), counted in a stored counter so every instance
 *   sees it; more is 429 with Retry-After.
 * - A token that does not verify, or names no secret, tenant or subject that exists, gets a page saying the link does
 *   not work (403); an expired one, a page saying so (410). Neither says anything about the person.
 */
import { createHash } from "node:crypto";
import {
  ALL_PURPOSES,
  projectStates,
  countLinkRequest,
  derivedConsentEventId,
  linkExpiry,
  linkTokenSignedBy,
  LINK_RATE_WINDOW_MS,
  newLinkId,
  parseLinkToken,
  secretRetiresAt,
  signLinkToken,
  type LinkClaims,
  type ParsedLinkToken,
} from "../domain/consent";
import { DEFAULT_LANGUAGE, type Language } from "../domain/language";
import { formatInstant } from "../domain/time";
import { AppError } from "../errors";
import type { Log } from "../observability";
import type { Services } from "../services";
import type { LinkSecret, PurposeDoc, StoredLinkSecrets } from "../stores/consent-store";
import { withoutMeta } from "../stores/cosmos";
import type { StoredTenant } from "../stores/tenant-store";
import { recordAudit, type TenantCaller } from "./audit-trail";
import { newLinkSecret, openLinkSecret, unwrapSubjectKey } from "./consent-keys";
import { eventsOfHistory, factOf, findSubject, MAX_PURPOSES, recordEvents, recorded, type EventFacts } from "./consents";
import { emitWebhookEvent } from "./webhooks";

/** Where the public withdrawal page of a token is served (under the host's /api prefix). */
export const withdrawalPath = (token: string) => `/api/public/consent-withdrawal/${token}`;

/** At most this many secret versions verify at once; a rotation beyond it is refused until older ones retire. */
const MAX_LIVE_SECRETS = 20;

const live = (sec: LinkSecret, now: Date) => sec.retiresAt === null || Date.parse(sec.retiresAt) > now.getTime();

/** The tenant's current secret, creating version 1 on first use. */
async function currentSecret(s: Services, tenantId: string, kekVersion: string): Promise<LinkSecret> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const doc = await s.consents.getLinkSecrets(tenantId);
    const current = doc?.secrets.find((sec) => sec.retiresAt === null);
    if (current) return current;
    const now = s.clock.now();
    const first = await newLinkSecret(s, tenantId, kekVersion, 1, now);
    if (await s.consents.saveLinkSecrets({ tenantId, secrets: [first], updatedAt: now.toISOString() }, undefined)) return first;
  }
  throw new AppError("conflict", "the withdrawal-link secret is being changed by another request; retry");
}

export interface IssuedLink {
  linkId: string;
  subjectId: string;
  purpose: string;
  /** The page's path on this service, and the full URL as this request reached it. */
  path: string;
  url: string;
  token: string;
  expiresAt: string;
}

/**
 * POST /consents/withdrawal-links: a signed link for the subject with this address, for one purpose or `all`, valid
 * for CONSENT_LINK_DAYS. Errors: validation-failed (no such purpose; no consent recorded for this subject).
 */
export async function issueWithdrawalLink(s: Services, caller: TenantCaller, input: { email: string; purpose: string }, origin: string): Promise<IssuedLink> {
  const { tenantId } = caller;
  if (input.purpose !== ALL_PURPOSES && !(await s.consents.getPurpose(tenantId, input.purpose))) {
    throw new AppError("validation-failed", "purpose names no purpose of this tenant", { errors: [{ path: "purpose", message: "no purpose with this key (or 'all')" }] });
  }
  const subject = await findSubject(s, tenantId, input.email);
  if (!subject) {
    throw new AppError("validation-failed", "no consent is recorded for this data subject; record it before issuing a withdrawal link", {
      errors: [{ path: "email", message: "no consent recorded for this address" }],
    });
  }
  const secret = await currentSecret(s, tenantId, caller.kekVersion);
  const now = s.clock.now();
  const claims: LinkClaims = {
    tenantId,
    secretVersion: secret.version,
    subjectId: subject.subjectId,
    purpose: input.purpose,
    linkId: newLinkId(),
    expiresAt: linkExpiry(now, s.settings.consentLinkDays),
  };
  const token = signLinkToken(await openLinkSecret(s, tenantId, secret), claims);
  const expiresAt = new Date(claims.expiresAt * 1000).toISOString();
  await recordAudit(s, tenantId, caller, "consent.link-issued", { type: "consent-subject", id: subject.subjectId }, {
    linkId: claims.linkId,
    purpose: input.purpose,
    secretVersion: secret.version,
    expiresAt,
  });
  const path = withdrawalPath(token);
  return { linkId: claims.linkId, subjectId: subject.subjectId, purpose: input.purpose, path, url: origin.replace(/\/+$/, "") + path, token, expiresAt };
}

/**
 * POST /consents/withdrawal-links/rotate-secret: a new current signing secret. The previous one keeps verifying the
 * links it signed until they have all expired; versions past that are dropped. Errors: conflict (raced, or
 * MAX_LIVE_SECRETS versions still verifying).
 */
export async function rotateLinkSecret(s: Services, caller: TenantCaller): Promise<{ secretVersion: number; previousVersion: number | null; previousRetiresAt: string | null }> {
  const { tenantId } = caller;
  for (let attempt = 0; attempt < 5; attempt++) {
    const doc: StoredLinkSecrets | undefined = await s.consents.getLinkSecrets(tenantId);
    const now = s.clock.now();
    const kept = (doc?.secrets ?? []).filter((sec) => live(sec, now));
    if (kept.length >= MAX_LIVE_SECRETS) {
      throw new AppError("conflict", `${MAX_LIVE_SECRETS} link secrets still verify links; rotate again when the oldest retires (${kept.find((x) => x.retiresAt)?.retiresAt ?? "later"})`);
    }
    const previous = kept.find((sec) => sec.retiresAt === null);
    const retiresAt = secretRetiresAt(now, s.settings.consentLinkDays).toISOString();
    const version = Math.max(0, ...(doc?.secrets ?? []).map((sec) => sec.version)) + 1;
    const secrets = [...kept.map((sec) => (sec.retiresAt === null ? { ...sec, retiresAt } : sec)), await newLinkSecret(s, tenantId, caller.kekVersion, version, now)];
    if (!(await s.consents.saveLinkSecrets({ tenantId, secrets, updatedAt: now.toISOString() }, doc?._etag))) continue;
    await recordAudit(s, tenantId, caller, "consent.link-secret-rotated", { type: "tenant", id: tenantId }, {
      secretVersion: version,
      previousVersion: previous?.version ?? null,
      previousRetiresAt: previous ? retiresAt : null,
    });
    return { secretVersion: version, previousVersion: previous?.version ?? null, previousRetiresAt: previous ? retiresAt : null };
  }
  throw new AppError("conflict", "the withdrawal-link secret is being changed by another request; retry");
}

// --- the public pages ----------------------------------------------------------------------------------------------

export interface WithdrawalPage {
  status: 200 | 403 | 410;
  html: string;
}

type PageState = "confirm" | "done" | "already" | "pending" | "expired" | "invalid";

function page(
  s: Services,
  state: PageState,
  language: Language,
  fields: { controllerName?: string; purposeDescription?: string; allPurposes?: boolean; withdrawnAt?: string; expiresAt?: string; inForce?: boolean } = {},
): string {
  return s.pages.render("consent-withdrawal", language, {
    confirm: state === "confirm",
    pending: state === "pending",
    inForce: fields.inForce ?? true,
    done: state === "done",
    already: state === "already",
    expired: state === "expired",
    invalid: state === "invalid",
    controllerName: fields.controllerName ?? "",
    purposeDescription: fields.purposeDescription ?? "",
    allPurposes: fields.allPurposes ?? false,
    withdrawnAt: fields.withdrawnAt ?? "",
    expiresAt: fields.expiresAt ?? "",
  });
}

/** What a token that verified names. */
interface VerifiedLink {
  token: ParsedLinkToken;
  tokenHash: string;
  tenant: StoredTenant;
  secret: LinkSecret;
}

/** The token verified against the tenant's secret of its version, or undefined (forged, unknown, damaged). */
async function verify(s: Services, token: string): Promise<VerifiedLink | undefined> {
  const parsed = parseLinkToken(token);
  if (!parsed) return undefined;
  const tenant = await s.tenants.get(parsed.claims.tenantId);
  if (!tenant || tenant.offboardedAt) return undefined;
  const secret = (await s.consents.getLinkSecrets(tenant.tenantId))?.secrets.find((sec) => sec.version === parsed.claims.secretVersion);
  if (!secret || !linkTokenSignedBy(await openLinkSecret(s, tenant.tenantId, secret), parsed)) return undefined;
  return { token: parsed, tokenHash: createHash("sha256").update(Buffer.from(token, "base64url")).digest("hex"), tenant, secret };
}

/** Counts one request of a link; throws too-many-requests (with Retry-After) past LINK_RATE_LIMIT in the window. */
async function countRequest(s: Services, link: VerifiedLink): Promise<void> {
  const { tenantId } = link.tenant;
  for (let attempt = 0; attempt < 10; attempt++) {
    const stored = await s.consents.getLinkRate(tenantId, link.tokenHash);
    const r = countLinkRequest(stored, s.clock.now());
    if (!r.allowed) {
      throw new AppError("too-many-requests", "this link was used too often in the last hour; try again later", { retryAfterSeconds: r.retryAfterSeconds });
    }
    const doc = { tenantId, subjectId: link.token.claims.subjectId, windowStart: r.windowStart, count: r.count, ttl: Math.ceil((2 * LINK_RATE_WINDOW_MS) / 1000) };
    if (await s.consents.saveLinkRate(doc, link.tokenHash, stored?._etag)) return;
  }
  throw new AppError("too-many-requests", "this link is being used by many requests at once; try again later", { retryAfterSeconds: 5 });
}

/** How long a second POST of a link waits for the first to finish before saying the withdrawal is being recorded. */
const CONCURRENT_USE_WAIT_MS = 5_000;

/**
 * The page for a POST of a link whose use another request has claimed (a double click, a retried form): a browser
 * gets a page, never a problem document. Waits up to CONCURRENT_USE_WAIT_MS for the other request to finish, then
 * shows "already withdrawn" with its time; if it has not finished by then, a page saying the withdrawal is being
 * recorded (the claim is taken over after two minutes if its request died, so reloading finishes it).
 */
async function pageOfConcurrentUse(
  s: Services,
  link: VerifiedLink,
  language: Language,
  fields: { controllerName: string; purposeDescription: string; allPurposes: boolean },
): Promise<string> {
  const when = (d: Date) => formatInstant(d, language, link.tenant.timeZone);
  const started = Date.now();
  for (;;) {
    const use = await s.consents.getLinkUse(link.tenant.tenantId, link.tokenHash);
    if (use?.usedAt) return page(s, "already", language, { ...fields, withdrawnAt: when(new Date(use.usedAt)) });
    if (Date.now() - started >= CONCURRENT_USE_WAIT_MS) return page(s, "pending", language, { ...fields, withdrawnAt: when(new Date(use?.claimedAt ?? s.clock.now())) });
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * GET or POST of /api/public/consent-withdrawal/{token}. GET: the confirmation page (or that it was used, expired or
 * does not work). POST: withdraws once and says so; a POST while another POST of the same link is being recorded
 * gets the "already withdrawn" page once that one finishes (or a page saying it is being recorded). Errors:
 * too-many-requests.
 */
export async function withdrawalPage(s: Services, token: string, method: "GET" | "POST", requestId: string, log?: Log): Promise<WithdrawalPage> {
  const link = await verify(s, token);
  if (!link) return { status: 403, html: page(s, "invalid", DEFAULT_LANGUAGE) };
  await countRequest(s, link);
  const { tenant, token: parsed } = link;
  const claims = parsed.claims;
  const language = tenant.language;
  const now = s.clock.now();
  const when = (d: Date) => formatInstant(d, language, tenant.timeZone);
  const expired = claims.expiresAt * 1000 <= now.getTime() || (link.secret.retiresAt !== null && Date.parse(link.secret.retiresAt) <= now.getTime());
  const subject = await s.consents.getSubjectById(tenant.tenantId, claims.subjectId);
  const purpose = claims.purpose === ALL_PURPOSES ? undefined : await s.consents.getPurpose(tenant.tenantId, claims.purpose);
  // A subject whose records were erased, or a purpose that is not there: the link has nothing left to act on.
  if (expired || !subject || (claims.purpose !== ALL_PURPOSES && !purpose)) return { status: 410, html: page(s, "expired", language) };
  const fields = { controllerName: tenant.name, purposeDescription: purpose?.description ?? "", allPurposes: claims.purpose === ALL_PURPOSES };

  const used = await s.consents.getLinkUse(tenant.tenantId, link.tokenHash);
  if (used?.usedAt) return { status: 200, html: page(s, "already", language, { ...fields, withdrawnAt: when(new Date(used.usedAt)) }) };
  if (method === "GET") {
    // Say what the records show: "you gave your consent" only while a consent named by the link is in force.
    const states = projectStates(recorded(await eventsOfHistory(s, tenant.tenantId, subject, purpose?.key)).map(factOf));
    const inForce = states.some((st) => st.decision === "granted");
    return { status: 200, html: page(s, "confirm", language, { ...fields, inForce, expiresAt: when(new Date(claims.expiresAt * 1000)) }) };
  }

  // Claim the link's one use. A claim a crashed request left (older than two minutes) is taken over: the events have
  // fixed ids, so the withdrawal it began is finished, not made twice.
  if (!used) {
    const claimed = await s.consents.claimLinkUse({ tenantId: tenant.tenantId, subjectId: claims.subjectId, linkId: claims.linkId, claimedAt: now.toISOString(), usedAt: null, eventIds: [] }, link.tokenHash);
    if (!claimed) return { status: 200, html: await pageOfConcurrentUse(s, link, language, fields) };
  } else if (now.getTime() - Date.parse(used.claimedAt) < 2 * 60_000) {
    return { status: 200, html: await pageOfConcurrentUse(s, link, language, fields) };
  }

  const purposes: PurposeDoc[] = purpose ? [purpose] : await s.consents.listPurposes(tenant.tenantId, MAX_PURPOSES);
  const list: EventFacts[] = [];
  for (const p of purposes) {
    const notice = p.lastNoticeVersion > 0 ? (await s.consents.listNotices(tenant.tenantId, p.key)).at(-1) : undefined;
    list.push({
      purposeKey: p.key,
      noticeVersion: notice?.version ?? null,
      noticeSha256: notice?.sha256 ?? null,
      decision: "withdrawn",
      method: "withdrawal-link",
      requestOrigin: "withdrawal-link",
      propertyId: null,
      language,
      givenAt: now.toISOString(),
      ipAddress: null,
      userAgent: null,
      pageUrl: null,
      gpc: null,
      location: null,
      tcf: null,
      gpp: null,
    });
  }
  const ctx = { subject: withoutMeta(subject), dataKey: await unwrapSubjectKey(s, subject), lookupSecret: await s.keys.lookupSecret(tenant.tenantId) };
  const events = await recordEvents(
    s,
    tenant.tenantId,
    { known: ctx },
    list,
    { actor: "subject", requestId, linkId: claims.linkId, kekVersion: tenant.kekVersion },
    list.map((f) => derivedConsentEventId(`${link.tokenHash}:${f.purposeKey}`)),
  );
  const eventIds = events.map((e) => e.id);
  await s.consents.completeLinkUse(tenant.tenantId, link.tokenHash, now, eventIds);
  try {
    await emitWebhookEvent(s, tenant.tenantId, "consent.withdrawn", `consent.withdrawn:${claims.linkId}`, {
      subjectId: claims.subjectId,
      purpose: claims.purpose,
      linkId: claims.linkId,
      events: eventIds.length,
      eventIds: eventIds.slice(0, 20).join(","),
    });
  } catch (err) {
    // The withdrawal is recorded (and in the audit log); the tenant still finds it by searching or in the log.
    log?.error("consent.webhook-not-queued", { tenantId: tenant.tenantId, linkId: claims.linkId, errorName: (err as Error).name });
  }
  return { status: 200, html: page(s, "done", language, { ...fields, withdrawnAt: when(now) }) };
}
