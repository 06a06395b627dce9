import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import Mustache from "mustache";
import { describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { bundledTemplatesDir, EmailTemplates, LANGUAGES, TemplateError, type PlainView } from "../../shared/email/templates";

/** A folder with the given template files, for the rules the loader enforces. */
function folder(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "templates-"));
  for (const [name, content] of Object.entries(files)) writeFileSync(path.join(dir, name), content);
  return dir;
}

const file = (subject: string, text: string, html: string) => `--- subject ---\n${subject}\n--- text ---\n${text}\n--- html ---\n${html}\n`;
const both = (content: string) => ({ "t.en.mustache": content, "t.da.mustache": content });

describe("e-mail templates: the bundled ones", () => {
  const templates = new EmailTemplates(bundledTemplatesDir());

  it("exist in every language and render with the view they are given", () => {
    expect(templates.names()).toContain("first-download");
    for (const language of LANGUAGES) {
      const m = templates.render("first-download", language, { uploadId: "up-1", controllerName: "Acme ApS", downloadedAt: "30 November 2026", expiresAt: "1 January 2027" });
      expect(m.subject).toContain("up-1");
      expect(m.text).toContain("Acme ApS");
      expect(m.html).toContain(`lang="${language}"`);
    }
  });

  it("differ by language", () => {
    const view = { uploadId: "up-1", controllerName: "Acme", downloadedAt: "x", expiresAt: "y" };
    expect(templates.render("first-download", "da", view).subject).not.toBe(templates.render("first-download", "en", view).subject);
  });

  it("escape every view value in the HTML part, and leave the text part as text", () => {
    const render = (controllerName: string) => templates.render("first-download", "en", { uploadId: "up-1", controllerName, downloadedAt: "d", expiresAt: "e" });
    const marker = "MARKER0MARKER";
    const shape = render(marker);
    fc.assert(
      fc.property(fc.string({ maxLength: 40, unit: "binary" }), (name) => {
        const m = render(name);
        // The HTML is the template with the name, escaped, where the name goes; the text has it as it is.
        expect(m.html).toBe(shape.html.split(marker).join(Mustache.escape(name)));
        expect(m.text).toBe(shape.text.split(marker).join(name));
      }),
      { numRuns: 200 },
    );
    const m = templates.render("first-download", "en", { uploadId: "up-1", controllerName: '<script>alert("x")</script> & co', downloadedAt: "d", expiresAt: "e" });
    expect(m.html).not.toContain("<script>");
    expect(m.html).toContain("&lt;script&gt;");
    expect(m.text).toContain('<script>alert("x")</script> & co');
  });

  it("fail on a placeholder the view does not provide, naming it and no values", () => {
    expect(() => templates.render("first-download", "en", { uploadId: "secret-value", controllerName: "Acme", downloadedAt: "d" })).toThrow(/\{\{expiresAt\}\}/);
    try {
      templates.render("first-download", "en", { uploadId: "secret-value", controllerName: "Acme", downloadedAt: "d" });
    } catch (err) {
      expect((err as Error).message).not.toContain("secret-value");
    }
  });

  it("refuse views that are not plain data", () => {
    const base = { uploadId: "up-1", controllerName: "Acme", downloadedAt: "d", expiresAt: "e" };
    const bad: unknown[] = [() => "x", new Date(), Number.NaN, undefined, { toString: () => "x", nested: () => 1 }];
    for (const value of bad) expect(() => templates.render("first-download", "en", { ...base, controllerName: value } as unknown as PlainView)).toThrow(TemplateError);
  });

  it("refuse a subject that would render to several lines", () => {
    expect(() => templates.render("first-download", "en", { uploadId: "up-1\r\nBcc: x@example.com", controllerName: "A", downloadedAt: "d", expiresAt: "e" })).toThrow(/one line/);
  });
});

describe("e-mail templates: what a template file may not do", () => {
  it.each([
    ["unescaped output", file("s", "{{{raw}}}", "h")],
    ["unescaped output with &", file("s", "t", "{{&raw}}")],
    ["a partial", file("s", "{{>other}}", "h")],
    ["a delimiter change", file("s", "{{=<% %>=}}", "h")],
    ["a missing part", "--- subject ---\ns\n--- text ---\nt\n"],
    ["a part given twice", file("s", "t", "h") + "--- text ---\nagain\n"],
    ["a subject of two lines", file("s\nsecond", "t", "h")],
    ["text before the first part", "hello\n" + file("s", "t", "h")],
  ])("refuse %s", (_what, content) => {
    expect(() => new EmailTemplates(folder(both(content)))).toThrow(TemplateError);
  });

  it("refuse a template that is missing in a language", () => {
    expect(() => new EmailTemplates(folder({ "t.en.mustache": file("s", "t", "h") }))).toThrow(/t\.da\.mustache is missing/);
  });

  it("check names inside sections against each item", () => {
    const templates = new EmailTemplates(folder(both(file("{{count}} items", "{{#items}}- {{name}}\n{{/items}}{{^items}}none{{/items}}", "<ul>{{#items}}<li>{{name}}</li>{{/items}}</ul>"))));
    expect(templates.render("t", "en", { count: 2, items: [{ name: "a" }, { name: "<b>" }] }).html).toBe("<ul><li>a</li><li>&lt;b&gt;</li></ul>\n");
    expect(templates.render("t", "en", { count: 0, items: [] }).text).toBe("none\n");
    expect(() => templates.render("t", "en", { count: 1, items: [{ title: "a" }] })).toThrow(/\{\{name\}\}/);
  });
});
