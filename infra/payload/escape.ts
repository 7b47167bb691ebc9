/**
 * Escaping for every place a value meets an interpreter on a host: shell, SQL, PHP,
 * Apache directives, MariaDB option files, NFS exports and fstab, comments.
 *
 * The model's validation (infra/config) is the first line; this is the second: each
 * value is written in the syntax of the place it lands, and a value that syntax
 * cannot hold safely is refused with the setting it came from, never written.
 * Values are written unchanged wherever they need no quoting, so ordinary configs
 * render exactly as they always did.
 */
import { ConfigError } from "../config/errors";

/** A setting's value with the config key it came from, so that a refusal can name it. */
export class Sourced {
  constructor(
    readonly value: string,
    readonly origin: string,
  ) {}
  // Composed strings (`${a}:${b}`) and JSON.stringify see the plain value.
  toString(): string {
    return this.value;
  }
  toJSON(): string {
    return this.value;
  }
}

/** Text as the escaping functions take it: plain (built by our code) or from a setting. */
export type Text = string | Sourced;

/** Origin reported for plain text: it was built by the payload code, not read from a setting. */
const BUILT = "(value built by the payload)";

export function sourced(origin: string, value: string): Sourced {
  return new Sourced(value, origin);
}

function valueOf(v: Text): string {
  return v instanceof Sourced ? v.value : v;
}

function originOf(v: Text): string {
  return v instanceof Sourced ? v.origin : BUILT;
}

function show(v: string): string {
  const s = JSON.stringify(v);
  return s.length > 90 ? `${s.slice(0, 80)}…" (${v.length} characters)` : s;
}

/**
 * A value that cannot be written safely where it lands. A ConfigError, keyed by the
 * setting it came from, so it reads like (and is handled like) any refused setting.
 */
export class UnsafeValueError extends ConfigError {
  constructor(
    readonly origin: string,
    readonly value: string,
    readonly reason: string,
    readonly where?: string,
  ) {
    super(origin, `${show(value)} cannot be written ${reason}${where ? ` (${where})` : ""}; nothing was written`);
    this.name = "UnsafeValueError";
  }

  at(where: string): UnsafeValueError {
    return new UnsafeValueError(this.origin, this.value, this.reason, this.where ? `${where}, ${this.where}` : where);
  }
}

function refuse(v: Text, reason: string): never {
  throw new UnsafeValueError(originOf(v), valueOf(v), reason);
}

function text(v: unknown, what: string): Text {
  if (v instanceof Sourced || typeof v === "string") return v;
  if (v === undefined || v === null) throw new Error(`${what} needs a value, got nothing`);
  throw new Error(`${what} needs text, got ${typeof v}`);
}

// C0 controls and DEL: line breaks end a directive, statement or command in every
// syntax we write, and the rest have no business in a setting either.
const CONTROL = /[\u0000-\u001f\u007f]/;
const NUL = /\u0000/;

function describeControl(s: string): string {
  const m = CONTROL.exec(s);
  if (!m) return "";
  const c = m[0];
  return c === "\n"
    ? "a line break"
    : c === "\r"
      ? "a carriage return"
      : c === "\t"
        ? "a tab"
        : `the control character U+${c.charCodeAt(0).toString(16).padStart(4, "0")}`;
}

// ---- shell ---------------------------------------------------------------------

/** Words a POSIX shell takes literally in argument position, so they stay unquoted. */
const SHELL_PLAIN = /^[A-Za-z0-9_./:@%+,-]+$/;

/**
 * One shell argument (or several, space separated), quoted where needed: single
 * quotes keep everything literal, and `'` itself is written as `'\''`. A leading `-`
 * is refused because quoting cannot stop a command from reading it as an option.
 */
export function shellArg(v: Text | readonly Text[]): string {
  if (Array.isArray(v)) return (v as readonly Text[]).map((x) => shellArg(x)).join(" ");
  const t = v as Text;
  const s = valueOf(t);
  if (NUL.test(s)) refuse(t, "into a shell command: it holds a NUL byte");
  if (s.startsWith("-")) refuse(t, 'as a shell argument: it starts with "-" and would be read as an option');
  if (SHELL_PLAIN.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

// ---- SQL (MariaDB) -------------------------------------------------------------

/** A string literal; right with and without NO_BACKSLASH_ESCAPES (`'` is doubled, `\` too). */
export function sqlString(v: Text): string {
  const s = valueOf(v);
  if (NUL.test(s)) refuse(v, "into SQL: it holds a NUL byte");
  return `'${s.replace(/\\/g, "\\\\").replace(/'/g, "''")}'`;
}

/** A quoted identifier: backticks, with a backtick inside doubled. */
export function sqlIdent(v: Text): string {
  const s = valueOf(v);
  if (s === "") refuse(v, "as an SQL name: it is empty");
  if (NUL.test(s)) refuse(v, "as an SQL name: it holds a NUL byte");
  return `\`${s.replace(/`/g, "``")}\``;
}

// ---- PHP -----------------------------------------------------------------------

/** A single-quoted PHP string: only `\` and `'` are special there. */
export function phpString(v: Text): string {
  const s = valueOf(v);
  return `'${s.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

// ---- Apache httpd --------------------------------------------------------------

const APACHE_PLAIN = /^[A-Za-z0-9_./:@%+,=|-]+$/;
// httpd reads lines of at most 8 KB; a longer one is an error, not a directive.
const APACHE_MAX = 4096;

function apacheChecked(v: Text, where: string): string {
  const s = valueOf(v);
  const ctl = describeControl(s);
  if (ctl) refuse(v, `into ${where}: it holds ${ctl}`);
  // httpd replaces ${NAME} everywhere in its config, quoted or not, and has no escape for it.
  if (s.includes("${")) refuse(v, `into ${where}: httpd would replace "\${...}" with a variable`);
  if (s.length > APACHE_MAX) refuse(v, `into ${where}: longer than ${APACHE_MAX} characters`);
  return s;
}

function apacheQuote(s: string): string {
  // Inside double quotes httpd reads \\ as \ and \" as ", nothing else.
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** One Apache directive argument: as is when it is one plain word, else double-quoted. */
export function apacheArg(v: Text): string {
  const s = apacheChecked(v, "an Apache directive");
  return s !== "" && APACHE_PLAIN.test(s) ? s : apacheQuote(s);
}

/** One always-quoted argument made of the parts, for the places the config always quotes (URLs). */
export function apacheQuoted(parts: readonly Text[]): string {
  return apacheQuote(parts.map((p) => apacheChecked(p, "an Apache directive")).join(""));
}

/** A `key=value` parameter (BalancerMember, ProxyPass): quoted as one word when needed. */
export function apacheKeyValue(key: string, v: Text): string {
  const s = apacheChecked(v, `the Apache parameter ${key}=`);
  const word = `${key}=${s}`;
  return s !== "" && APACHE_PLAIN.test(s) ? word : apacheQuote(word);
}

/**
 * A path in `<Directory>`: httpd matches `*`, `?` and `[` there as wildcards and a
 * leading `~` as a regular expression, whether quoted or not, so those are refused.
 */
export function apachePath(v: Text): string {
  const s = valueOf(v);
  if (/[*?[\]]/.test(s) || s.startsWith("~")) refuse(v, "as an Apache <Directory> path: httpd reads * ? [ ] ~ there as a pattern");
  return apacheArg(v);
}

/**
 * One field of mod_rewrite's cookie flag `[CO=name:value:domain:...]`. mod_rewrite
 * splits the flags on `,` and the fields on `:`, ends them at `]`, and expands
 * `$N`, `%N` and `%{...}` inside: only cookie-token characters without those are safe.
 */
export function rewriteCookieField(v: Text): string {
  const s = valueOf(v);
  if (s === "" || !/^[A-Za-z0-9!#&'*+.^_`|~-]+$/.test(s)) {
    refuse(v, "into mod_rewrite's cookie flag [CO=...]: use letters, digits and ! # & ' * + . ^ _ ` | ~ - only (no : , ] $ % \\ or spaces)");
  }
  return s;
}

// ---- MariaDB option files ------------------------------------------------------

const OPTION_PLAIN = /^[A-Za-z0-9_./:@+,=-]+$/;
// MariaDB reads option files in lines of 4 KB: the rest of a longer line would be read as the next line.
const OPTION_MAX = 1024;

/** An option value: as is when plain, else double-quoted with `\` and `"` escaped. */
export function optionValue(v: Text): string {
  const s = valueOf(v);
  const ctl = describeControl(s);
  if (ctl) refuse(v, `into a MariaDB option file: it holds ${ctl}`);
  if (s.length > OPTION_MAX) refuse(v, `into a MariaDB option file: longer than ${OPTION_MAX} characters`);
  if (s !== "" && OPTION_PLAIN.test(s)) return s;
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

// ---- NFS: exports(5) and fstab(5) ---------------------------------------------

/**
 * A path in /etc/exports or /etc/fstab. Both split on white space, treat `#` as a
 * comment and `\` as an escape; these characters are refused rather than encoded,
 * and so is everything a shell would expand inside double quotes.
 */
export function nfsPath(v: Text): string {
  const s = valueOf(v);
  if (!/^\/[A-Za-z0-9_./+@,-]*$/.test(s)) {
    refuse(v, "as an NFS export or mount path: use an absolute path of letters, digits and _ . / + @ , - only");
  }
  return s;
}

/** A client in /etc/exports or the server in fstab: an address or host name, never a wildcard or netgroup. */
export function nfsHost(v: Text): string {
  const s = valueOf(v);
  if (!/^[A-Za-z0-9][A-Za-z0-9.:_-]*$/.test(s)) {
    refuse(v, "as an NFS client or server: use an address or host name (letters, digits, . : _ -); wildcards, netgroups and options are refused");
  }
  return s;
}

// ---- comments and plain tokens ------------------------------------------------

/**
 * Text inside a one-line comment (#, //, --). A line break would end the comment,
 * `?>` ends PHP mode even inside a PHP comment, and a trailing `\` continues an
 * Apache comment onto the next line.
 */
export function commentText(v: Text): string {
  const s = valueOf(v);
  const ctl = describeControl(s);
  if (ctl) refuse(v, `into a comment: it holds ${ctl}`);
  if (s.includes("?>")) refuse(v, 'into a comment: "?>" would end PHP mode');
  if (s.endsWith("\\")) refuse(v, "into a comment: a trailing \\ continues the line");
  return s;
}

/** A word that needs no quoting in any of our files (modes, enum values). */
export function plainToken(v: Text): string {
  const s = valueOf(v);
  if (!/^[A-Za-z0-9_./:@+,=-]+$/.test(s)) refuse(v, "as a plain word: use letters, digits and _ . / : @ + , = - only");
  return s;
}

/**
 * A php.ini size (256M). Anything else could be an ini operator (| & ~ !), a
 * quote, ${...} interpolation or a `;` comment: refused, never quoted.
 */
export function iniSize(v: Text): string {
  const s = valueOf(v);
  if (!/^[0-9]{1,13}[KMG]?$/.test(s)) refuse(v, "as a php.ini size: use digits and one of K, M or G (e.g. 256M)");
  return s;
}

export function integer(v: unknown): string {
  if (typeof v === "number" && Number.isInteger(v)) return String(v);
  if (v === undefined || v === null) throw new Error("needs a number, got nothing");
  throw new Error(`needs a whole number, got ${JSON.stringify(v)}`);
}

/**
 * The template helpers, one per syntax. Every `{{...}}` in a template must go through
 * one of these (render.ts refuses a template that does not), so no value reaches a
 * file without its syntax being named.
 */
export const ESCAPE_HELPERS: Readonly<Record<string, (...args: unknown[]) => string>> = {
  sh: (v) => shellArg(Array.isArray(v) ? v.map((x) => text(x, "sh")) : text(v, "sh")),
  // Shell code our own payload code built (steps, service commands), whose values went through `sh`.
  shCode: (v) => {
    const s = valueOf(text(v, "shCode"));
    if (NUL.test(s)) throw new Error("shell code holds a NUL byte");
    return s;
  },
  sql: (v) => sqlString(text(v, "sql")),
  sqlId: (v) => sqlIdent(text(v, "sqlId")),
  php: (v) => phpString(text(v, "php")),
  apache: (v) => apacheArg(text(v, "apache")),
  apacheQuoted: (...parts) => apacheQuoted(parts.map((p) => text(p, "apacheQuoted"))),
  apacheKv: (key, v) => apacheKeyValue(valueOf(text(key, "apacheKv")), text(v, "apacheKv")),
  apachePath: (v) => apachePath(text(v, "apachePath")),
  rewriteCookie: (v) => rewriteCookieField(text(v, "rewriteCookie")),
  option: (v) => optionValue(text(v, "option")),
  nfsPath: (v) => nfsPath(text(v, "nfsPath")),
  nfsHost: (v) => nfsHost(text(v, "nfsHost")),
  comment: (v) => commentText(text(v, "comment")),
  token: (v) => plainToken(text(v, "token")),
  iniSize: (v) => iniSize(text(v, "iniSize")),
  int: (v) => integer(v),
  json: (v) => {
    if (v === undefined) throw new Error("json needs a value, got nothing");
    return JSON.stringify(v);
  },
  jsonPretty: (v) => {
    if (v === undefined) throw new Error("jsonPretty needs a value, got nothing");
    return JSON.stringify(v, null, 2);
  },
};

/** Compares settings by value, so a Sourced value equals the plain text it holds. */
export function sameText(a: unknown, b: unknown): boolean {
  const plain = (x: unknown): unknown => (x instanceof Sourced ? x.value : x);
  return plain(a) === plain(b);
}
