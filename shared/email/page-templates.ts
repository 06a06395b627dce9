/**
 * HTML page templates: the few pages the service shows to people (a consent withdrawal link's pages) or prints for a
 * tenant (a consent proof). One file per page and language, `templates/pages/<name>.<language>.mustache`, the whole
 * file being the HTML document. They follow the e-mail templates' rules (templates.ts): Mustache, logic-less, views
 * of plain data only; every value HTML-escaped; unescaped output, partials and delimiter changes refused when loaded;
 * a placeholder the view does not provide fails the rendering; every page exists in every language. Pages carry no
 * script: loading refuses a `<script` tag, an inline event handler (`on...=`) or a `javascript:` URL, and the
 * answers that serve them send a Content-Security-Policy without script sources.
 */
import path from "node:path";
import Mustache from "mustache";
import type { Language } from "../domain/language";
import { checkNames, checkPlain, checkTokens, loadLanguageFiles, TemplateError, type PlainView, type Token } from "./templates";

/** What would run code in a page, were a browser to ignore the policy: refused in the template's source. */
const ACTIVE_CONTENT = /<script\b|\son[a-z]+\s*=|javascript:/i;

export class PageTemplates {
  private readonly pages: Map<string, { source: string; tokens: Token[] }>;

  /** Loads every `<name>.<language>.mustache` in `dir`. Throws TemplateError for a malformed file or a missing language. */
  constructor(readonly dir: string) {
    this.pages = loadLanguageFiles(dir, "page", (entry, source) => {
      if (ACTIVE_CONTENT.test(source)) throw new TemplateError(`${entry}: pages hold no scripts, event handlers or javascript: URLs`);
      const tokens = Mustache.parse(source) as unknown as Token[];
      checkTokens(entry, tokens);
      return { source, tokens };
    });
  }

  names(): string[] {
    return [...new Set([...this.pages.keys()].map((k) => k.slice(0, k.lastIndexOf("."))))].sort();
  }

  /** The page as HTML, every value escaped. Throws TemplateError for an unknown page, a view not of plain data or a missing placeholder. */
  render(name: string, language: Language, view: PlainView): string {
    const file = `${name}.${language}.mustache`;
    const page = this.pages.get(`${name}.${language}`);
    if (!page) throw new TemplateError(`no page ${file}`);
    checkPlain(view, "view");
    checkNames(file, page.tokens, [view]);
    return Mustache.render(page.source, view);
  }
}

/** The pages shipped with the service: `templates/pages/` beside `templates/email/` (bundledTemplatesDir). */
export function bundledPagesDir(emailDir: string): string {
  return path.join(path.dirname(emailDir), "pages");
}
