// Request headers sent to the member: end-to-end headers copied in order,
// hop-by-hop ones dropped (hop.ts), forwarding headers added like mod_proxy.
import { isHopByHop } from './hop';
import { Framing, RequestHead } from './request-parser';

export interface OutgoingOptions {
  /** Value appended to Via ("1.1 hostname"), or null when Via is off. */
  via: string | null;
  /** Send the client's Host to the member (Apache's ProxyPreserveHost On). */
  preserveHost: boolean;
}

/** Flat [name, value, ...] list of the fields to send to the member. */
export function outgoingHeaders(req: RequestHead, clientIp: string, memberAuthority: string, o: OutgoingOptions): string[] {
  const raw = req.raw;
  const tokens = req.hopTokens;
  const out: string[] = [];
  let xff: string | undefined;
  let xfh: string | undefined;
  let via: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    const value = raw[i + 1];
    const c = name.charCodeAt(0) | 0x20;
    if (c === 104 /* h */ || c === 120 /* x */ || c === 101 /* e */ || c === 118 /* v */) {
      const lower = name.toLowerCase();
      switch (lower) {
        case 'host':
          continue;
        case 'x-forwarded-for':
          xff = xff === undefined ? value : `${xff}, ${value}`;
          continue;
        case 'x-forwarded-host':
          xfh = xfh === undefined ? value : `${xfh}, ${value}`;
          continue;
        case 'x-forwarded-proto':
          // Only we know how the client reached us; a client-sent value is not passed on.
          continue;
        case 'expect':
          // We answer "100 Continue" ourselves once a member is ready; the member must not wait for it.
          continue;
        case 'via':
          via = via === undefined ? value : `${via}, ${value}`;
          continue;
      }
    }
    if (isHopByHop(name, tokens)) continue;
    out.push(name, value);
  }
  const host = req.host;
  out.push('Host', o.preserveHost && host !== undefined ? host : memberAuthority);
  out.push('X-Forwarded-For', xff === undefined ? clientIp : `${xff}, ${clientIp}`);
  if (host !== undefined) out.push('X-Forwarded-Host', xfh === undefined ? host : `${xfh}, ${host}`);
  out.push('X-Forwarded-Proto', 'http');
  if (o.via !== null) out.push('Via', via === undefined ? o.via : `${via}, ${o.via}`);
  else if (via !== undefined) out.push('Via', via);
  // The client's chunked framing was decoded; we frame the body again ourselves.
  if (req.framing === Framing.Chunked) out.push('Transfer-Encoding', 'chunked');
  return out;
}

/** The request head for the member, ready to write (latin1: header bytes pass through unchanged). */
export function outgoingHead(req: RequestHead, clientIp: string, memberAuthority: string, o: OutgoingOptions): string {
  const headers = outgoingHeaders(req, clientIp, memberAuthority, o);
  let head = `${req.method} ${req.url} HTTP/1.1\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return head + '\r\n';
}
