// Response headers sent back to the client: hop-by-hop dropped (hop.ts),
// member URLs in Location/Content-Location/URI rewritten to the public origin
// (like ProxyPassReverse), Via added, and the sticky cookie set if asked.
// Content-Length and Transfer-Encoding are never copied: the client
// connection writes the framing from the parsed answer (client.ts sendHead),
// so a member listing them in Connection cannot strip them.
import { connectionTokens, isHopByHop } from "./hop";

export class ReverseRewriter {
  private prefixes: string[] = [];
  constructor(
    private publicUrl: string,
    authorities: readonly string[],
  ) {
    for (const a of authorities) {
      this.prefixes.push(`http://${a}`);
      if (a.endsWith(":80")) this.prefixes.push(`http://${a.slice(0, -3)}`);
    }
    // Longest first so "http://lb1:8080" is not cut at "http://lb1:80".
    this.prefixes.sort((x, y) => y.length - x.length);
  }

  rewrite(value: string): string {
    for (const p of this.prefixes) {
      if (value.length >= p.length && value.startsWith(p)) {
        const next = value.charCodeAt(p.length);
        // Only a whole authority matches: end, '/', '?' or '#'.
        if (Number.isNaN(next) || next === 47 || next === 63 || next === 35) return this.publicUrl + value.slice(p.length);
      }
    }
    return value;
  }
}

export interface ResponseOptions {
  rewriter: ReverseRewriter;
  via: string | null;
  /** Cookie name to look for when `setCookieLine` is given. */
  cookieName: string;
  /** Complete Set-Cookie value to add unless the member set cookieName itself; null for none. */
  setCookieLine: string | null;
  /** Our Strict-Transport-Security value, replacing a member's; null leaves the member's as is. */
  hsts: string | null;
}

export function responseHeaders(raw: readonly string[], o: ResponseOptions): string[] {
  const tokens = connectionTokens(raw);
  const out: string[] = [];
  let via: string | undefined;
  let needCookie = o.setCookieLine !== null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    let value = raw[i + 1];
    const c = name.charCodeAt(0) | 0x20;
    if (c === 108 /* l */ || c === 99 /* c */ || c === 117 /* u */ || c === 118 /* v */ || c === 115 /* s */ || c === 116 /* t */) {
      const lower = name.toLowerCase();
      if (lower === "content-length" || lower === "transfer-encoding") continue;
      if (lower === "location" || lower === "content-location" || lower === "uri") value = o.rewriter.rewrite(value);
      else if (lower === "via") {
        via = via === undefined ? value : `${via}, ${value}`;
        continue;
      } else if (needCookie && lower === "set-cookie" && setsCookie(value, o.cookieName)) needCookie = false;
      else if (o.hsts !== null && lower === "strict-transport-security") continue;
    }
    if (isHopByHop(name, tokens)) continue;
    out.push(name, value);
  }
  if (o.via !== null) out.push("Via", via === undefined ? o.via : `${via}, ${o.via}`);
  else if (via !== undefined) out.push("Via", via);
  if (needCookie && o.setCookieLine !== null) out.push("Set-Cookie", o.setCookieLine);
  if (o.hsts !== null) out.push("Strict-Transport-Security", o.hsts);
  return out;
}

function setsCookie(value: string, name: string): boolean {
  let i = 0;
  while (value.charCodeAt(i) === 32) i++;
  return value.startsWith(name, i) && value.charCodeAt(i + name.length) === 61;
}
