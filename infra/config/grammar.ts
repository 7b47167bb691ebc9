/**
 * The grammars stack values must match, one per kind of place they land in:
 * host names, cookie parts, composer constraints, URLs, identifiers. Each is a
 * whitelist, so a value is accepted because it is known to be inert where it
 * lands, not because it lacks some character we thought of.
 */
import * as net from "node:net";

/** A value as an error message shows it: JSON, so newlines and quotes are visible; long values cut. */
export function quote(value: unknown): string {
  const s = JSON.stringify(typeof value === "string" ? value : String(value));
  return s.length > 80 ? `${s.slice(0, 76)}..."` : s;
}

const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/**
 * A DNS host name by RFC 1123: labels of letters, digits and inner hyphens, at most
 * 63 characters each and 253 in all. The last label is not all digits, so
 * `10.0.0` cannot pass as a name when it was meant as an address.
 */
export function isHostname(s: string): boolean {
  if (s.length === 0 || s.length > 253) return false;
  const labels = s.split(".");
  return labels.every((l) => LABEL.test(l)) && !/^\d+$/.test(labels[labels.length - 1]);
}

/** Dotted-quad IPv4 without leading zeros (node refuses those already). */
export function isIPv4(s: string): boolean {
  return net.isIPv4(s);
}

/**
 * IPv6 in plain hex-and-colons form. No zone id (`%eth0`) and no embedded dotted
 * IPv4 (`::ffff:1.2.3.4`): Apache's `Require ip` refuses both.
 */
export function isIPv6(s: string): boolean {
  return /^[0-9A-Fa-f:]+$/.test(s) && net.isIPv6(s);
}

export const HOSTNAME_RULE = "an IP address or a host name (letters, digits, - and . only; labels of at most 63 characters, 253 in all)";

/**
 * Cookie names and the Tomcat path parameter: RFC 6265 token characters without
 * `$` and `%` (mod_rewrite expands both inside `[CO=...]`), `'`, `#`, `&` (URL and
 * shell syntax), `|` (it separates cookie from path parameter) and backtick.
 */
export const COOKIE_NAME = /^[A-Za-z0-9!*+.^_~-]+$/;
export const COOKIE_NAME_RULE = "letters, digits and ! * + . ^ _ ~ -";

/**
 * Separators Apache's `stickysessionsep` takes that are also inert in a cookie
 * value, in mod_rewrite's `[CO=name:value:...]` flag, in a URL path parameter and
 * in a shell word. `:` would start the cookie's domain, `]` end the flag, `%`/`$`
 * expand, `;`/`,` end the cookie, `=`/`/`/`?`/`#`/`&` change a URL.
 */
export const SEPARATORS = [".", "_", "-", "~", "!", "*", "^", "|"] as const;

/** Characters of `balancer.cookieValuePrefix`: letters, digits and the separators above. */
export const COOKIE_VALUE_PREFIX = /^[A-Za-z0-9._~!*^|-]+$/;

/** Routes as Apache (`route=`, at most 63 characters) and proxy-node both accept. */
export const ROUTE = /^[A-Za-z0-9_-]{1,63}$/;
/** Apache keeps `balancer://<name>` in 96 bytes with its NUL: 84 characters for the name. */
export const BALANCER_NAME = /^[A-Za-z0-9_-]{1,84}$/;
/** mod_proxy_balancer copies `stickysession=` into 64 bytes with its NUL and silently cuts the rest. */
export const STICKYSESSION_MAX = 63;

/** MariaDB identifiers we write unquoted-safe: letters, digits, _; a database name at most 64. */
export const SQL_DATABASE = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
/** Account names at most 32 characters (MySQL's limit, stricter than MariaDB's 80). */
export const SQL_USER = /^[A-Za-z_][A-Za-z0-9_]{0,31}$/;
/** Schemas MariaDB keeps for itself: granting ALL on one of these hands out the server. */
export const SYSTEM_SCHEMAS = ["mysql", "information_schema", "performance_schema", "sys"] as const;
/** Accounts that exist on the data server already; ALTER USER on one would take it over. */
export const RESERVED_SQL_USERS = ["root", "mysql", "debian-sys-maint"] as const;

/** Login names on the ssh hosts: POSIX portable user names. */
export const SSH_USER = /^[a-z_][a-z0-9_-]{0,31}$/;

/** Docker network and volume names as docker accepts them (and safe in its `name=^...$` filters). */
export const DOCKER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
/** A docker image reference without registry port or digest: repository[:tag]. */
export const DOCKER_IMAGE = /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$/;

/**
 * A composer version constraint by a strict grammar: `^10`, `~10.3.0`, `10.3.*`,
 * `>=10.2 <11`, `^10.3 || ^11`, `10.3.0 - 10.3.9`, `10.x-dev`, `^10@beta`. It lands
 * in a shell word and in composer's argument, so nothing outside this grammar passes.
 */
const VERSION = String.raw`v?\d{1,5}(?:\.(?:\d{1,5}|[*xX])){0,3}(?:-(?:dev|(?:alpha|beta|RC|rc|patch|p)(?:\.?\d{1,3})?))?(?:@(?:dev|alpha|beta|RC|stable))?`;
const SINGLE = String.raw`(?:\*|(?:\^|~|>=|<=|>|<|!=|==|=)?${VERSION}|${VERSION} - ${VERSION})`;
const CONJUNCTION = String.raw`${SINGLE}(?:(?:, ?| )${SINGLE})*`;
const COMPOSER_CONSTRAINT = new RegExp(String.raw`^${CONJUNCTION}(?: ?\|\|? ?${CONJUNCTION})*$`);

export function isComposerConstraint(s: string): boolean {
  return s.length <= 100 && COMPOSER_CONSTRAINT.test(s);
}
export const COMPOSER_RULE = "a composer version constraint such as ^10, ~10.3.0, 10.3.*, >=10.2 <11 or ^10.3 || ^11";

/** The host part of a URL we accept: a host name, an IPv4 address or a bracketed IPv6 address. */
function urlHostOk(host: string): boolean {
  if (host.startsWith("[") && host.endsWith("]")) return isIPv6(host.slice(1, -1));
  return isHostname(host) || isIPv4(host);
}

const ORIGIN = /^(https?):\/\/(\[[0-9A-Fa-f:]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?\/?$/;

/** `http(s)://host[:port]` and nothing more: no user, path, query or fragment. */
export function isOrigin(s: string): boolean {
  const m = ORIGIN.exec(s);
  if (!m || !urlHostOk(m[2])) return false;
  return m[3] === undefined || (Number(m[3]) >= 1 && Number(m[3]) <= 65535 && !/^0/.test(m[3]));
}

const TARBALL = /^https?:\/\/(\[[0-9A-Fa-f:]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?(\/[A-Za-z0-9._~-]+)+\.tar\.gz$/;

/**
 * A release tarball URL: http(s), a host, a path of unreserved URL characters
 * only, ending in .tar.gz. No query, no `%`, nothing a shell or wget reads specially.
 */
export function isTarballUrl(s: string): boolean {
  const m = TARBALL.exec(s);
  if (!m || s.length > 2000 || !urlHostOk(m[1])) return false;
  return m[2] === undefined || (Number(m[2]) >= 1 && Number(m[2]) <= 65535 && !/^0/.test(m[2]));
}
