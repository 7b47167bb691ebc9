import * as net from "node:net";

/**
 * A cookie jar that keeps and sends cookies as a browser does (RFC 6265
 * sections 5.1 to 5.4, and RFC 6265bis on Secure cookies over plain HTTP), so
 * a cookie a browser would drop is dropped here too: a Domain that the URL's
 * host does not domain-match, a Path the pages are not under, Secure over
 * http, an expiry in the past. A plain map of name to value would keep all of
 * them, and hide a sticky cookie that no real client ever sends back.
 * Not modelled: the public suffix list, SameSite, size limits.
 */
export interface Cookie {
  name: string;
  value: string;
  /** Lower case, without a leading dot. */
  domain: string;
  /** Set without a Domain attribute: sent back to exactly this host only. */
  hostOnly: boolean;
  path: string;
  secure: boolean;
  /** Milliseconds since the epoch; none: until the browser closes. */
  expires?: number;
}

export type Received = { kept: Cookie } | { dropped: string; name: string };

export class CookieJar {
  private cookies: Cookie[] = [];

  /** Takes one Set-Cookie header of a response to `url`. */
  receive(url: URL, header: string, now = Date.now()): Received {
    const parsed = parseSetCookie(header, now);
    if ("dropped" in parsed) return parsed;
    const host = url.hostname.toLowerCase();
    let domain = host;
    let hostOnly = true;
    if (parsed.domain !== undefined) {
      if (!domainMatch(host, parsed.domain)) {
        return { name: parsed.name, dropped: `Domain=${parsed.domain} does not domain-match the host ${host}, so a browser drops the cookie` };
      }
      domain = parsed.domain;
      hostOnly = false;
    }
    if (parsed.secure && url.protocol !== "https:") {
      return { name: parsed.name, dropped: "it is Secure but came over http, so a browser drops it (RFC 6265bis)" };
    }
    const cookie: Cookie = {
      name: parsed.name,
      value: parsed.value,
      domain,
      hostOnly,
      path: parsed.path ?? defaultPath(url),
      secure: parsed.secure,
      expires: parsed.expires,
    };
    this.cookies = this.cookies.filter((c) => !(c.name === cookie.name && c.domain === cookie.domain && c.path === cookie.path));
    if (cookie.expires !== undefined && cookie.expires <= now) {
      return { name: parsed.name, dropped: "it expires at once (Expires in the past or Max-Age <= 0)" };
    }
    this.cookies.push(cookie);
    return { kept: cookie };
  }

  /** The cookies a browser sends with a request to `url`, longest path first. */
  sendable(url: URL, now = Date.now()): Cookie[] {
    const host = url.hostname.toLowerCase();
    this.cookies = this.cookies.filter((c) => c.expires === undefined || c.expires > now);
    return this.cookies
      .filter((c) => (c.hostOnly ? c.domain === host : domainMatch(host, c.domain)))
      .filter((c) => pathMatch(url.pathname || "/", c.path))
      .filter((c) => !c.secure || url.protocol === "https:")
      .sort((a, b) => b.path.length - a.path.length);
  }

  /** The Cookie header for a request to `url` ("" when none goes). */
  header(url: URL, now = Date.now()): string {
    return this.sendable(url, now)
      .map((c) => `${c.name}=${c.value}`)
      .join("; ");
  }

  /** Stores a cookie as if `url`'s host had set it without attributes (host-only, path /). */
  put(url: URL, name: string, value: string): void {
    const host = url.hostname.toLowerCase();
    this.cookies = this.cookies.filter((c) => !(c.name === name && c.domain === host && c.path === "/"));
    this.cookies.push({ name, value, domain: host, hostOnly: true, path: "/", secure: false });
  }
}

interface ParsedSetCookie {
  name: string;
  value: string;
  domain?: string;
  path?: string;
  secure: boolean;
  expires?: number;
}

/** RFC 6265 section 5.2: the last of each attribute counts, unknown ones are ignored. */
export function parseSetCookie(header: string, now = Date.now()): ParsedSetCookie | { dropped: string; name: string } {
  const [pair, ...attributes] = header.split(";");
  const eq = pair.indexOf("=");
  if (eq < 0) return { name: pair.trim(), dropped: "no '=' in its name=value" };
  const name = pair.slice(0, eq).trim();
  if (!name) return { name, dropped: "an empty name" };
  const out: ParsedSetCookie = { name, value: pair.slice(eq + 1).trim(), secure: false };
  let maxAge: number | undefined;
  let expires: number | undefined;
  for (const a of attributes) {
    const i = a.indexOf("=");
    const key = (i < 0 ? a : a.slice(0, i)).trim().toLowerCase();
    const val = i < 0 ? "" : a.slice(i + 1).trim();
    if (key === "domain" && val) out.domain = val.replace(/^\./, "").toLowerCase();
    else if (key === "path") out.path = val.startsWith("/") ? val : undefined;
    else if (key === "secure") out.secure = true;
    else if (key === "max-age" && /^-?\d+$/.test(val)) maxAge = Number(val);
    else if (key === "expires") {
      const t = Date.parse(val);
      if (!Number.isNaN(t)) expires = t;
    }
  }
  // Max-Age wins over Expires (section 5.3 step 3).
  if (maxAge !== undefined) out.expires = maxAge <= 0 ? 0 : now + maxAge * 1000;
  else if (expires !== undefined) out.expires = expires;
  return out;
}

/** Section 5.1.3: identical, or a suffix at a dot of a host name (never of an IP address). */
export function domainMatch(host: string, domain: string): boolean {
  if (host === domain) return true;
  return net.isIP(host.replace(/^\[|\]$/g, "")) === 0 && host.endsWith(`.${domain}`);
}

/** Section 5.1.4. */
export function pathMatch(requestPath: string, cookiePath: string): boolean {
  if (requestPath === cookiePath) return true;
  if (!requestPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith("/") || requestPath[cookiePath.length] === "/";
}

/** Section 5.1.4: the request path up to its last "/", or "/". */
function defaultPath(url: URL): string {
  const p = url.pathname;
  if (!p.startsWith("/")) return "/";
  const last = p.lastIndexOf("/");
  return last <= 0 ? "/" : p.slice(0, last);
}
