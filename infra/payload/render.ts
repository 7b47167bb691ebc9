import * as fs from "node:fs";
import * as path from "node:path";
import Handlebars from "handlebars";

/** The repository's templates/ folder: one template per file that lands on a host. */
export const TEMPLATE_ROOT = path.resolve(__dirname, "..", "..", "templates");

/**
 * Our own Handlebars environment: strict (a missing value fails the render instead
 * of writing an empty string into a config file) and without HTML escaping, since
 * nothing we render is HTML. Each target language gets an explicit escaping helper.
 */
const hbs = Handlebars.create();

hbs.registerHelper("php", (v: unknown) => {
  if (typeof v !== "string") throw new Error(`php helper needs text, got ${typeof v}`);
  return `'${v.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
});
hbs.registerHelper("sql", (v: unknown) => {
  if (typeof v !== "string") throw new Error(`sql helper needs text, got ${typeof v}`);
  return `'${v.replace(/\\/g, "\\\\").replace(/'/g, "''")}'`;
});
function defined(helper: string, v: unknown): unknown {
  if (v === undefined) throw new Error(`${helper} needs a value, got nothing`);
  return v;
}
hbs.registerHelper("json", (v: unknown) => JSON.stringify(defined("json", v)));
hbs.registerHelper("jsonPretty", (v: unknown) => JSON.stringify(defined("jsonPretty", v), null, 2));
hbs.registerHelper("eq", (a: unknown, b: unknown) => a === b);
hbs.registerHelper("join", (items: unknown, sep: unknown) => {
  if (!Array.isArray(items)) throw new Error("join helper needs a list");
  return items.join(typeof sep === "string" ? sep : " ");
});

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

const cache = new Map<string, Handlebars.TemplateDelegate>();

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
    tpl = hbs.compile(source, { strict: true, noEscape: true });
    cache.set(name, tpl);
  }
  try {
    return tpl(view);
  } catch (e) {
    throw new TemplateError(name, e);
  }
}
