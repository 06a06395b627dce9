/** The package's rules: safe names in the zip, download tokens, the privacy-information document, data.json's schema. */
import fc from "fast-check";
import { describe, it } from "@jest/globals";
import Ajv2020 from "ajv/dist/2020";
import { expect } from "../helpers/expect";
import {
  contentEntryPath,
  formatPackageToken,
  packageExpiresAt,
  packageJsonSchema,
  packageScopeOf,
  parsePackageToken,
  privacyDocumentSchema,
  safeFileName,
  PACKAGE_FORMAT,
  PACKAGE_SCHEMA_VERSION,
} from "../../shared/domain/subject-package";
import { subjectPackageSchema } from "../../shared/usecases/subject-request-access";
import { exportSections } from "../../shared/usecases/export-sections";

describe("names inside the zip", () => {
  it("are a last path part without control characters, never empty, '.' or '..', at most 100 characters", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 300 }), (name) => {
        const safe = safeFileName(name);
        expect(safe.length).toBeGreaterThan(0);
        expect(safe.length).toBeLessThanOrEqual(100);
        // eslint-disable-next-line no-control-regex
        expect(safe).not.toMatch(/[/\\<>:"|?*\u0000-\u001f\u007f]/);
        expect(safe.startsWith(".")).toBe(false);
        const path = contentEntryPath("up-abc", name);
        expect(path.split("/")).toHaveLength(3);
        expect(path.split("/")).not.toContain("..");
      }),
      { numRuns: 500 },
    );
  });

  it("keep an ordinary name and its extension", () => {
    expect(safeFileName("løn 2026 – Carl.pdf")).toBe("løn 2026 – Carl.pdf");
    expect(safeFileName("../../etc/passwd")).toBe("passwd");
    expect(safeFileName("..")).toBe("file");
    expect(safeFileName(`${"x".repeat(200)}.pdf`)).toMatch(/^x{96}\.pdf$/);
    expect(contentEntryPath("up-1", undefined)).toBe("files/up-1/content");
  });
});

describe("names that would run when opened", () => {
  it("get .txt added, in any case, and nothing else changes", () => {
    expect(contentEntryPath("up-1", "page.html")).toBe("files/up-1/page.html.txt");
    expect(contentEntryPath("up-1", "Pic.SVG")).toBe("files/up-1/Pic.SVG.txt");
    expect(contentEntryPath("up-1", "setup.exe")).toBe("files/up-1/setup.exe.txt");
    expect(contentEntryPath("up-1", "report.pdf")).toBe("files/up-1/report.pdf");
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), fc.constantFrom("html", "HTM", "xhtml", "svg", "js", "hta", "bat", "lnk", "pdf", "png", "txt"), (base, ext) => {
        const path = contentEntryPath("up-abc", `${base}.${ext}`);
        const last = path.slice(path.lastIndexOf(".") + 1).toLowerCase();
        expect(["html", "htm", "xhtml", "svg", "js", "hta", "bat", "lnk"]).not.toContain(last);
      }),
      { numRuns: 300 },
    );
  });
});

describe("download tokens", () => {
  it("round-trip and refuse anything else", () => {
    const tenantId = "tn-abcdefghijklmnop";
    const requestId = `dsr-${"a".repeat(26)}`;
    const secret = "A".repeat(43);
    const token = formatPackageToken(tenantId, requestId, secret);
    expect(parsePackageToken(token)).toEqual({ tenantId, requestId, secret });
    for (const bad of [token.slice(1), `${token}A`, token.replace("tn-", "tx-"), token.replace(/\./g, "/"), "", "x.y.z"]) expect(parsePackageToken(bad), bad).toBeUndefined();
  });

  it("expire DSR_EXPORT_DAYS after the package was built", () => {
    expect(packageExpiresAt(new Date("2027-01-30T10:00:00Z"), 7).toISOString()).toBe("2027-02-06T10:00:00.000Z");
  });
});

describe("the privacy-information document", () => {
  const texts = { purposes: "p", categories: "c", recipients: "r", retention: "d", rights: "e", complaint: "f", source: "g", automatedDecisions: "h" };
  it("needs every Art. 15(1) point in both languages; transfers (Art. 15(2)) may be left out", () => {
    expect(privacyDocumentSchema.safeParse({ en: texts, da: texts }).success).toBe(true);
    expect(privacyDocumentSchema.safeParse({ en: texts, da: { ...texts, transfers: "SCCs" } }).success).toBe(true);
    expect(privacyDocumentSchema.safeParse({ en: texts }).success).toBe(false);
    const { complaint: _gone, ...withoutComplaint } = texts;
    expect(privacyDocumentSchema.safeParse({ en: texts, da: withoutComplaint }).success).toBe(false);
    expect(privacyDocumentSchema.safeParse({ en: texts, da: { ...texts, extra: "x" } }).success).toBe(false);
    expect(privacyDocumentSchema.safeParse({ en: texts, da: { ...texts, purposes: "   " } }).success).toBe(false);
    expect(privacyDocumentSchema.safeParse({ en: texts, da: { ...texts, purposes: "a\u0000b" } }).success).toBe(false);
  });
});

describe("data.json's JSON Schema", () => {
  const ajv = new Ajv2020({ strict: false });
  ajv.addFormat("date-time", (v: string) => !Number.isNaN(Date.parse(v)));
  const minimal = (sections: Record<string, unknown[]>) => ({
    format: PACKAGE_FORMAT,
    schemaVersion: PACKAGE_SCHEMA_VERSION,
    generatedAt: "2027-01-01T00:00:00.000Z",
    scope: "portability",
    language: "da",
    controller: { name: "Acme", tenantId: "tn-x" },
    request: { id: "dsr-x", type: "portability", receivedAt: "2027-01-01T00:00:00.000Z", verifiedAt: null },
    subject: { email: "p@example.com" },
    privacyInformation: null,
    sections,
  });

  it("describes every registered section, and is closed", () => {
    const schema = subjectPackageSchema();
    const validate = ajv.compile(schema);
    const names = exportSections().map((s) => s.name);
    expect(names).toEqual(expect.arrayContaining(["uploads", "consentRecords", "earlierRequests"]));
    const empty = Object.fromEntries(names.map((n) => [n, []]));
    expect(validate(minimal(empty)), JSON.stringify(validate.errors)).toBe(true);
    expect(validate({ ...minimal(empty), extra: 1 })).toBe(false);
    expect(validate({ ...minimal(empty), schemaVersion: PACKAGE_SCHEMA_VERSION + 1 })).toBe(false);
    expect(validate(minimal({}))).toBe(false);
    expect(validate(minimal({ ...empty, uploads: [{ id: "up-1" }] }))).toBe(false);
  });

  it("is built from the sections given", () => {
    const schema = packageJsonSchema([{ name: "things", description: "d", item: { type: "integer" } }], "https://example.com");
    expect(schema.$id).toBe("https://example.com/api/v1/subject-package.schema.json");
    const validate = ajv.compile(schema);
    expect(validate(minimal({ things: [1, 2] }))).toBe(true);
    expect(validate(minimal({ things: ["x"] }))).toBe(false);
  });

  it("covers access and portability only", () => {
    expect(packageScopeOf("access")).toBe("access");
    expect(packageScopeOf("portability")).toBe("portability");
    expect(packageScopeOf("erasure")).toBeUndefined();
  });
});
