// Request headers sent to the member: end-to-end headers copied in order,
// hop-by-hop ones dropped (hop.ts), forwarding headers added like mod_proxy.
// The framing (Host, Content-Length, Transfer-Encoding) is always ours: it is
// written from what the parser decided, never copied and never dropped because
// a client listed it in Connection, so it always matches the bytes we send.
import { isHopByHop } from "./hop";
import { ipAllowed, Cidr } from "../cidr";
import { Framing, RequestHead } from "./request-parser";

export interface OutgoingOptions {
  /** Value appended to Via ("1.1 hostname"), or null when Via is off. */
  via: string | null;
  /** Send the client's Host to the member (Apache's ProxyPreserveHost On). */
  preserveHost: boolean;
  /**
   * Peers whose X-Forwarded-* and Forwarded headers are kept (a TLS terminator
   * or another proxy in front of us). Anyone else's are dropped: a client could
   * otherwise choose the host and scheme Drupal builds its links from.
   */
  trustForwardedFrom: readonly Cidr[];
  /** The scheme the client used with us: X-Forwarded-Proto unless a trusted peer sent one. */
  proto: "http" | "https";
}

/** Flat [name, value, ...] list of the fields to send to the member. */
export function outgoingHeaders(req: RequestHead, clientIp: string, memberAuthority: string, o: OutgoingOptions): string[] {
  const raw = req.raw;
  const tokens = req.hopTokens;
  const trusted = o.trustForwardedFrom.length > 0 && ipAllowed(clientIp, o.trustForwardedFrom);
  const out: string[] = [];
  let xff: string | undefined;
  let xfh: string | undefined;
  let xfp: string | undefined;
  let via: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    const value = raw[i + 1];
    const c = name.charCodeAt(0) | 0x20;
    if (c === 104 /* h */ || c === 120 /* x */ || c === 101 /* e */ || c === 118 /* v */ || c === 99 /* c */ || c === 116 /* t */ || c === 102 /* f */) {
      const lower = name.toLowerCase();
      switch (lower) {
        case "host":
        case "content-length":
        case "transfer-encoding":
          // Framing: written below from the parsed request.
          continue;
        case "x-forwarded-for":
          if (trusted) xff = xff === undefined ? value : `${xff}, ${value}`;
          continue;
        case "x-forwarded-host":
          if (trusted) xfh = xfh === undefined ? value : `${xfh}, ${value}`;
          continue;
        case "x-forwarded-proto":
          if (trusted) xfp ??= value;
          continue;
        case "forwarded":
          if (trusted) out.push(name, value);
          continue;
        case "expect":
          // We answer "100 Continue" ourselves once a member is ready; the member must not wait for it.
          continue;
        case "via":
          via = via === undefined ? value : `${via}, ${value}`;
          continue;
      }
    }
    if (isHopByHop(name, tokens)) continue;
    out.push(name, value);
  }
  const host = req.host;
  out.push("Host", o.preserveHost && host !== undefined ? host : memberAuthority);
  out.push("X-Forwarded-For", xff === undefined ? clientIp : `${xff}, ${clientIp}`);
  // Appended like mod_proxy, so a trusted chain reads in order.
  if (host !== undefined) out.push("X-Forwarded-Host", xfh === undefined ? host : `${xfh}, ${host}`);
  else if (xfh !== undefined) out.push("X-Forwarded-Host", xfh);
  out.push("X-Forwarded-Proto", xfp ?? o.proto);
  if (o.via !== null) out.push("Via", via === undefined ? o.via : `${via}, ${o.via}`);
  else if (via !== undefined) out.push("Via", via);
  // The client's chunked framing was decoded; we frame the body again ourselves.
  if (req.framing === Framing.Chunked) out.push("Transfer-Encoding", "chunked");
  else if (req.contentLength >= 0) out.push("Content-Length", String(req.contentLength));
  return out;
}

/** The request head for the member, ready to write (latin1: header bytes pass through unchanged). */
export function outgoingHead(req: RequestHead, clientIp: string, memberAuthority: string, o: OutgoingOptions): string {
  const headers = outgoingHeaders(req, clientIp, memberAuthority, o);
  let head = `${req.method} ${req.url} HTTP/1.1\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return head + "\r\n";
}
