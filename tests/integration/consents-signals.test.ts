/**
 * What a consent event carries besides the decision, over HTTP against the real local services: the country of the
 * IP address (given by the tenant, checked against ISO 3166-1, or derived offline from the GeoLite2 data with the
 * database's version), the GPC signal and a grant's conflict with it (in the state and the proof), and IAB TCF and
 * GPP strings decoded with the IAB's libraries (kept encrypted, their headers in clear, their hashes in the v2
 * digest), a malformed one refused.
 */
import { createHash, createHmac } from "node:crypto";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { GppModel } from "@iabgpp/cmpapi";
import { GVL, TCModel, TCString } from "@iabtechlabtcf/core";
import { expect } from "../helpers/expect";
import { startTestApp, type TestApp } from "../helpers/app";
import { purposeWithNotice, recordDecision, stateOf } from "../helpers/consents";
import { canonicalJson } from "../../shared/domain/audit-chain";

let t: TestApp;
let tenant: { tenantId: string; apiKey: string };
beforeAll(async () => {
  t = await startTestApp();
  t.clock.set("2026-06-01T08:00:00.000Z");
  tenant = await t.createTenant("Signals Co");
  await purposeWithNotice(t, tenant.apiKey, "ads");
});
afterAll(async () => {
  await t?.stop();
});

let n = 0;
const person = () => `signalled.person.${++n}@subject.example`;
const problem = async (res: Response) => ({ status: res.status, ...((await res.json()) as { type: string; detail: string; errors?: Array<{ path: string; message: string }> }) });
const record = (body: Record<string, unknown>) => t.call("POST", "v1/consents", { key: tenant.apiKey, json: { method: "click", requestOrigin: "banner", purpose: "ads", noticeVersion: 1, decision: "granted", ...body } });

interface Location {
  country: string;
  source: string;
  database: string | null;
}
interface Event {
  id: string;
  country: Location | null;
  gpc: boolean | null;
  conflictsWithGpc: boolean;
  tcf: Record<string, unknown> | null;
  gpp: { sections: string[]; tcf: Array<Record<string, unknown>> } | null;
  digestScheme: string;
}
interface ProofEvent {
  eventId: string;
  country: Location | null;
  conflictsWithGpc: boolean;
  signals: { tcf: { string: string | null; header: Record<string, unknown> } | null; gpp: { string: string | null; header: Record<string, unknown> } | null };
  digest: { key: string; canonical: string; value: string; content: Record<string, unknown> & { scheme: string } };
}
const proofOf = async (email: string) =>
  (await (await t.call("POST", "v1/consents/proof", { key: tenant.apiKey, json: { email, purpose: "ads" } })).json()) as {
    currentState: { decision: string; conflictsWithGpc: boolean };
    events: ProofEvent[];
  };
const verifies = (e: ProofEvent) => createHmac("sha256", Buffer.from(e.digest.key, "hex")).update(e.digest.canonical).digest("hex") === e.digest.value && canonicalJson(e.digest.content) === e.digest.canonical;

/** A TC string made by the IAB's own encoder, with a vendor list of the given version. */
function tcString(opts: { cmpId: number; cmpVersion: number; vendorListVersion: number }): string {
  const gvl = new GVL({
    gvlSpecificationVersion: 3,
    vendorListVersion: opts.vendorListVersion,
    tcfPolicyVersion: 5,
    lastUpdated: "2026-05-01T00:00:00Z",
    purposes: {},
    specialPurposes: {},
    features: {},
    specialFeatures: {},
    vendors: {},
    stacks: {},
    dataCategories: {},
  } as never);
  const m = new TCModel(gvl);
  m.cmpId = opts.cmpId;
  m.cmpVersion = opts.cmpVersion;
  m.consentScreen = 2;
  m.publisherCountryCode = "DK";
  m.created = new Date("2026-05-30T10:00:00Z");
  m.lastUpdated = new Date("2026-05-31T10:00:00Z");
  m.purposeConsents.set([1, 3, 4]);
  return TCString.encode(m);
}

function gppString(): string {
  const g = new GppModel();
  g.setFieldValue("tcfeuv2", "CmpId", 31);
  g.setFieldValue("tcfeuv2", "CmpVersion", 7);
  g.setFieldValue("tcfeuv2", "VendorListVersion", 88);
  g.setFieldValue("tcfeuv2", "PolicyVersion", 5);
  g.setFieldValue("uspv1", "Notice", "Y");
  g.setFieldValue("uspv1", "OptOutSale", "N");
  return g.encode();
}

describe("the country of the IP address", () => {
  it("derives it offline from the address, naming the database and its version, and the digest covers it", async () => {
    const email = person();
    const res = await record({ email, ipAddress: "80.62.117.1" });
    expect(res.status).toBe(201);
    const event = (await res.json()) as Event;
    expect(event.country).toEqual({ country: "DK", source: "derived", database: t.services.ipCountry.database });
    expect(event.country!.database).toMatch(/^geoip-country 5\.0\.\d{12} \(MaxMind GeoLite2 Country\)$/);
    const v6 = (await (await record({ email: person(), ipAddress: "2a00:1450:4001:800::200e" })).json()) as Event;
    expect(v6.country).toMatchObject({ country: "DE", source: "derived" });
    const proof = await proofOf(email);
    const shown = proof.events.find((e) => e.eventId === event.id)!;
    expect(shown.country).toEqual(event.country);
    expect(shown.digest.content).toMatchObject({ scheme: "safedata.consent-digest.v2", location: event.country });
    expect(verifies(shown)).toBe(true);
    const printed = await (await t.call("POST", "v1/consents/proof", { key: tenant.apiKey, json: { email, purpose: "ads", format: "html" } })).text();
    expect(printed).toContain(`DK (derived: ${event.country!.database!})`);
  });

  it("records the tenant's country as given (no database), even where the address says otherwise", async () => {
    const event = (await (await record({ email: person(), ipAddress: "80.62.117.1", country: "SE" })).json()) as Event;
    expect(event.country).toEqual({ country: "SE", source: "given", database: null });
    const noIp = (await (await record({ email: person(), country: "GL" })).json()) as Event;
    expect(noIp.country).toEqual({ country: "GL", source: "given", database: null });
  });

  it("has no country for an address the data does not place (private, documentation) or no address", async () => {
    for (const ipAddress of ["10.1.2.3", "192.168.0.7", "203.0.113.7", "2001:db8::1"]) {
      expect(((await (await record({ email: person(), ipAddress })).json()) as Event).country, ipAddress).toBeNull();
    }
    expect(((await (await record({ email: person() })).json()) as Event).country).toBeNull();
  });

  it("refuses a code that is not an assigned ISO 3166-1 alpha-2 country (422 naming the field), recording nothing", async () => {
    const email = person();
    for (const country of ["1A", "XX", "ZZ", "AA", "dk", "DNK", "D", "", "UK", "EU"]) {
      const p = await problem(await record({ email, country }));
      expect(p, country).toMatchObject({ status: 422, type: "urn:safedata:problem:validation-failed" });
      expect(p.errors?.[0]?.path, country).toBe("country");
    }
    expect((await stateOf(t, tenant.apiKey, email)).history).toEqual([]);
  });
});

describe("Global Privacy Control", () => {
  it("flags a grant from a browser that sent GPC in the event, the state and the proof", async () => {
    const email = person();
    const event = (await (await record({ email, gpc: true })).json()) as Event;
    expect(event).toMatchObject({ gpc: true, conflictsWithGpc: true });
    const state = (await stateOf(t, tenant.apiKey, email)) as unknown as { states: Array<{ purpose: string; decision: string; conflictsWithGpc: boolean }> };
    expect(state.states).toEqual([expect.objectContaining({ purpose: "ads", decision: "granted", conflictsWithGpc: true })]);
    const proof = await proofOf(email);
    expect(proof.currentState).toMatchObject({ decision: "granted", conflictsWithGpc: true });
    expect(proof.events[0]).toMatchObject({ conflictsWithGpc: true });
    expect(verifies(proof.events[0]!)).toBe(true);
    const printed = await (await t.call("POST", "v1/consents/proof", { key: tenant.apiKey, json: { email, purpose: "ads", format: "html" } })).text();
    expect(printed).toContain("conflicts with a Global Privacy Control signal");
    expect(printed).toContain("a grant that conflicts with a GPC signal");
  });

  it("records a GPC signal alone as a denial with method gpc; a later grant without it still conflicts", async () => {
    const email = person();
    const signal = await recordDecision(t, tenant.apiKey, { email, purpose: "ads", noticeVersion: 1, decision: "denied", method: "gpc" });
    expect(signal).toMatchObject({ decision: "denied", gpc: true, conflictsWithGpc: false });
    let state = (await stateOf(t, tenant.apiKey, email)) as unknown as { states: Array<{ decision: string; conflictsWithGpc: boolean }> };
    expect(state.states[0]).toMatchObject({ decision: "denied", conflictsWithGpc: false });
    t.clock.advance({ minutes: 1 });
    const later = (await (await record({ email, gpc: false })).json()) as Event;
    // The earlier signal stands: the grant conflicts with it (review C, finding 6: the event says so as the state does).
    expect(later.conflictsWithGpc).toBe(true);
    state = (await stateOf(t, tenant.apiKey, email)) as unknown as { states: Array<{ decision: string; conflictsWithGpc: boolean }> };
    expect(state.states[0]).toMatchObject({ decision: "granted", conflictsWithGpc: true });
    expect((await proofOf(email)).currentState.conflictsWithGpc).toBe(true);
  });

  it("has no conflict for a grant without GPC, and refuses a GPC grant or a GPC event that says there was no signal", async () => {
    const email = person();
    expect(((await (await record({ email, gpc: false })).json()) as Event).conflictsWithGpc).toBe(false);
    expect((await proofOf(email)).currentState.conflictsWithGpc).toBe(false);
    expect(await problem(await record({ email, method: "gpc" }))).toMatchObject({ status: 422 });
    const p = await problem(await record({ email, decision: "denied", method: "gpc", gpc: false }));
    expect(p).toMatchObject({ status: 422 });
    expect(p.errors?.[0]?.path).toBe("gpc");
  });
});

describe("IAB TCF and GPP strings", () => {
  it("stores a TC string encrypted with what its core segment says, decoded by the IAB's library; the proof shows it and its hash", async () => {
    const email = person();
    const tc = tcString({ cmpId: 300, cmpVersion: 12, vendorListVersion: 142 });
    const event = (await (await record({ email, tcfString: tc })).json()) as Event;
    expect(event.tcf).toMatchObject({ version: 2, cmpId: 300, cmpVersion: 12, vendorListVersion: 142, policyVersion: 5, created: "2026-05-30T10:00:00.000Z", lastUpdated: "2026-05-31T10:00:00.000Z", publisherCountryCode: "DK" });
    // Decoded here by the same library, the header agrees.
    const decoded = TCString.decode(tc);
    expect(event.tcf).toMatchObject({ cmpId: decoded.cmpId, vendorListVersion: decoded.vendorListVersion, policyVersion: decoded.policyVersion });
    // Never in clear in storage.
    const { resources } = await t.raw.containers.consents.items.query({ query: "SELECT * FROM c WHERE c.id = @id", parameters: [{ name: "@id", value: event.id }] }).fetchAll();
    expect(JSON.stringify(resources[0])).not.toContain(tc.slice(0, 24));

    const shown = (await proofOf(email)).events[0]!;
    expect(shown.signals.tcf).toMatchObject({ string: tc, header: { cmpId: 300 } });
    expect(shown.digest.content).toMatchObject({ tcf: { sha256: createHash("sha256").update(tc, "utf8").digest("hex"), header: { cmpId: 300 } }, gpp: null });
    expect(verifies(shown)).toBe(true);
  });

  it("stores a GPP string with its header and its TCF section's header fields", async () => {
    const email = person();
    const gpp = gppString();
    const event = (await (await record({ email, gppString: gpp })).json()) as Event;
    expect(event.gpp).toMatchObject({ version: 1, sectionIds: [2, 6], sections: ["tcfeuv2", "uspv1"], tcf: [{ section: "tcfeuv2", cmpId: 31, cmpVersion: 7, vendorListVersion: 88, policyVersion: 5 }] });
    const shown = (await proofOf(email)).events[0]!;
    expect(shown.signals.gpp?.string).toBe(gpp);
    expect(shown.digest.content).toMatchObject({ gpp: { sha256: createHash("sha256").update(gpp, "utf8").digest("hex") } });
    expect(verifies(shown)).toBe(true);
  });

  it("refuses a malformed string with 422 naming the field, recording nothing", async () => {
    const email = person();
    const tc = tcString({ cmpId: 300, cmpVersion: 12, vendorListVersion: 142 });
    const gpp = gppString();
    const bad: Array<[string, string]> = [
      ["tcfString", "not a tc string"],
      ["tcfString", tc.slice(0, 12)],
      ["tcfString", "C" + "A".repeat(40)],
      // A TCF v1 consent string.
      ["tcfString", "BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA"],
      // A GPP string is not a TC string.
      ["tcfString", gpp],
      ["tcfString", tc + "~"],
      ["gppString", "DBABMA~"],
      ["gppString", "DBAA"],
      ["gppString", "xyz~abc"],
      ["gppString", gpp.replace(/~.*$/, "~!!!")],
      ["gppString", tc],
    ];
    for (const [field, value] of bad) {
      const p = await problem(await record({ email, [field]: value }));
      expect(p, `${field}=${value}`).toMatchObject({ status: 422, type: "urn:safedata:problem:validation-failed" });
      expect(p.errors?.[0]?.path, `${field}=${value}`).toBe(field);
    }
    expect((await stateOf(t, tenant.apiKey, email)).history).toEqual([]);
  });
});
