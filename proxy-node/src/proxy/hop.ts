// The ONE place that knows which headers are hop-by-hop (RFC 9110 7.6.1):
// Connection and every header it names, Keep-Alive, TE, Trailer,
// Transfer-Encoding, Upgrade, and Proxy-*. Both directions use it.

const FIXED = new Set(["connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade"]);

/** Cheap pre-check on the first letter so most end-to-end headers are never lowercased. */
function mayBeHop(name: string): boolean {
  const c = name.charCodeAt(0) | 0x20;
  return c === 99 /* c */ || c === 107 /* k */ || c === 116 /* t */ || c === 117 /* u */ || c === 112; /* p */
}

/**
 * Lowercased names listed in Connection headers, beyond the usual
 * keep-alive/close. Returns null in the common case so nothing is allocated.
 */
export function connectionTokens(raw: readonly string[]): string[] | null {
  let out: string[] | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    if (name.length !== 10 || name.toLowerCase() !== "connection") continue;
    const v = raw[i + 1].toLowerCase();
    if (v === "keep-alive" || v === "close") continue;
    for (const part of v.split(",")) {
      const t = part.trim();
      if (t && t !== "close" && t !== "keep-alive") (out ??= []).push(t);
    }
  }
  return out;
}

/** True if `lowerName` is hop-by-hop given the Connection tokens. */
export function isHopByHopLower(lowerName: string, tokens: readonly string[] | null): boolean {
  if (FIXED.has(lowerName) || lowerName.startsWith("proxy-")) return true;
  return tokens !== null && tokens.includes(lowerName);
}

export function isHopByHop(name: string, tokens: readonly string[] | null): boolean {
  if (tokens === null && !mayBeHop(name)) return false;
  return isHopByHopLower(name.toLowerCase(), tokens);
}
