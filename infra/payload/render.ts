import * as fs from "node:fs";
import * as path from "node:path";
import Handlebars from "handlebars";
import { ESCAPE_HELPERS, sameText, UnsafeValueError } from "./escape";

/** The repository's templates/ folder: one template per file that lands on a host. */
export const TEMPLATE_ROOT = path.resolve(__dirname, "..", "..", "templates");

/**
 * Our own Handlebars environment: strict (a missing value fails the render instead
 * of writing an empty string into a config file) and without HTML escaping, since
 * nothing we render is HTML. Each target language gets an explicit escaping helper
 * (infra/payload/escape.ts), and a template that prints a value without one is refused.
 */
const hbs = Handlebars.create();

/** A helper's failure with the position of its `{{...}}`, so the error can quote it. */
class HelperFailure extends Error {
  constructor(
    readonly failure: unknown,
    readonly position: string,
  ) {
    super(failure instanceof Error ? failure.message : String(failure));
  }
}

for (const [name, fn] of Object.entries(ESCAPE_HELPERS)) {
  hbs.registerHelper(name, function (this: unknown, ...args: unknown[]) {
    // The last argument is Handlebars' options object, not a value.
    const options = args[args.length - 1] as { loc?: { start?: { line?: number; column?: number } } };
    try {
      return fn(...args.slice(0, -1));
    } catch (e) {
      throw new HelperFailure(e, `${options.loc?.start?.line ?? "?"}:${options.loc?.start?.column ?? "?"}`);
    }
  });
}
hbs.registerHelper("eq", (a: unknown, b: unknown) => sameText(a, b));

// Handlebars' strict mode checks plain {{value}} lookups only: the block helpers
// would take a missing list or flag as empty or false and drop config silently.
for (const name of ["each", "if", "unless", "with"]) {
  const builtin = hbs.helpers[name] as (...args: unknown[]) => unknown;
  hbs.registerHelper(name, function (this: unknown, ...args: unknown[]) {
    const options = args[args.length - 1] as { loc?: { start?: { line?: number } } };
    if (args.length < 2 || args[0] === undefined) {
      throw new Error(`#${name} needs a value (line ${options.loc?.start?.line ?? "?"})`);
    }
    return builtin.apply(this, args);
  });
}

// The few parts of Handlebars' AST the check reads.
interface SourceLocation {
  start: { line: number; column: number };
  end: { line: number; column: number };
}
interface Node {
  type: string;
  loc: SourceLocation;
  path?: { type: string; original?: unknown };
  params?: unknown[];
  body?: Node[];
  program?: { body: Node[] } | null;
  inverse?: { body: Node[] } | null;
}

/**
 * Every `{{...}}` that prints must name the syntax it prints into through an escaping
 * helper: `{{serverName}}` would write a setting raw. Block helpers (#each, #if) print
 * nothing themselves. Returns the source text of each printing expression by position,
 * so that a helper's error can quote the expression that failed.
 */
function checkTemplate(name: string, source: string): Map<string, string> {
  const lines = source.split("\n");
  const exprs = new Map<string, string>();
  const problems: string[] = [];
  const srcOf = (loc: SourceLocation): string => {
    if (loc.start.line !== loc.end.line) return "{{...}}";
    return lines[loc.start.line - 1].slice(loc.start.column, loc.end.column);
  };
  const visit = (node: Node): void => {
    if (node.type === "MustacheStatement") {
      const m = node;
      const helper = m.path?.type === "PathExpression" && typeof m.path.original === "string" ? m.path.original : "";
      if ((m.params ?? []).length === 0 || !(helper in ESCAPE_HELPERS)) {
        problems.push(`line ${m.loc.start.line}: ${srcOf(m.loc)} prints without an escaping helper (${Object.keys(ESCAPE_HELPERS).join(", ")})`);
      }
      exprs.set(`${m.loc.start.line}:${m.loc.start.column}`, srcOf(m.loc));
      return;
    }
    for (const child of node.body ?? []) visit(child);
    for (const child of node.program?.body ?? []) visit(child);
    for (const child of node.inverse?.body ?? []) visit(child);
  };
  visit(Handlebars.parse(source) as unknown as Node);
  if (problems.length > 0) throw new TemplateError(name, problems.join("; "));
  return exprs;
}

interface Compiled {
  run: Handlebars.TemplateDelegate;
  exprs: Map<string, string>;
}

const cache = new Map<string, Compiled>();

export class TemplateError extends Error {
  constructor(template: string, cause: unknown) {
    super(`template ${template}: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = "TemplateError";
  }
}

/** Renders templates/<name> with the given view; the name is relative to templates/. */
export function render(name: string, view: object): string {
  let tpl = cache.get(name);
  if (!tpl) {
    const file = path.join(TEMPLATE_ROOT, name);
    let source: string;
    try {
      source = fs.readFileSync(file, "utf8");
    } catch (e) {
      throw new TemplateError(name, e);
    }
    const exprs = checkTemplate(name, source);
    tpl = { run: hbs.compile(source, { strict: true, noEscape: true }), exprs };
    cache.set(name, tpl);
  }
  try {
    return tpl.run(view);
  } catch (e) {
    if (e instanceof HelperFailure) {
      const [line] = e.position.split(":");
      const where = `line ${line}, ${tpl.exprs.get(e.position) ?? "a helper"}`;
      // A refused value is a refused setting: it keeps its key, and says where it would have gone.
      if (e.failure instanceof UnsafeValueError) throw e.failure.at(`templates/${name} ${where}`);
      throw new TemplateError(name, `${where}: ${e.message}`);
    }
    throw new TemplateError(name, e);
  }
}
