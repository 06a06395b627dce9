/** The HTML page templates (withdrawal pages, printed proofs): logic-less, escaped, scriptless, in every language. */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { bundledPagesDir, PageTemplates } from "../../shared/email/page-templates";
import { bundledTemplatesDir, TemplateError } from "../../shared/email/templates";

const dirs: string[] = [];
function pagesWith(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "pages-"));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  return dir;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const view = { confirm: true, done: false, already: false, pending: false, inForce: true, expired: false, invalid: false, controllerName: "", purposeDescription: "", allPurposes: false, withdrawnAt: "", expiresAt: "" };

describe("the bundled pages", () => {
  const pages = new PageTemplates(bundledPagesDir(bundledTemplatesDir()));

  it("exist in every language and hold no script", () => {
    expect(pages.names()).toEqual(expect.arrayContaining(["consent-proof", "consent-withdrawal"]));
    for (const language of ["en", "da"] as const) {
      const html = pages.render("consent-withdrawal", language, view);
      expect(html).toContain(`lang="${language}"`);
      expect(html).not.toMatch(/<script|javascript:|\son[a-z]+=/i);
    }
  });

  it("escape every value", () => {
    const html = pages.render("consent-withdrawal", "en", { ...view, controllerName: '<script>x</script>"&', purposeDescription: "<img src=x onerror=alert(1)>" });
    expect(html).not.toContain("<script>x");
    expect(html).not.toContain("<img");
    expect(html).toContain("&lt;script&gt;x&lt;&#x2F;script&gt;&quot;&amp;");
  });

  it("refuse a view without a value a visited placeholder needs, or with something other than data", () => {
    const { controllerName: _c, ...missing } = view;
    expect(() => pages.render("consent-withdrawal", "en", missing)).toThrow(TemplateError);
    expect(() => pages.render("consent-withdrawal", "en", { ...view, controllerName: (() => "x") as never })).toThrow(TemplateError);
  });
});

describe("loading refuses", () => {
  const ok = "<p>{{x}}</p>";
  it("scripts, event handlers and javascript: URLs", () => {
    for (const bad of ["<script>1</script>", '<a onclick="x">', '<a href="javascript:x">']) {
      expect(() => new PageTemplates(pagesWith({ "p.en.mustache": bad, "p.da.mustache": ok })), bad).toThrow(TemplateError);
    }
  });
  it("unescaped output, partials, delimiter changes, a missing language", () => {
    for (const bad of ["{{{x}}}", "{{&x}}", "{{>other}}", "{{=<% %>=}}"]) {
      expect(() => new PageTemplates(pagesWith({ "p.en.mustache": bad, "p.da.mustache": ok })), bad).toThrow(TemplateError);
    }
    expect(() => new PageTemplates(pagesWith({ "p.en.mustache": ok }))).toThrow(/p\.da\.mustache is missing/);
  });
});
