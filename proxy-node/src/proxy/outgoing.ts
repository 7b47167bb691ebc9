// Request headers sent to the member: end-to-end headers copied in order,
// hop-by-hop ones dropped (hop.ts), forwarding headers added like mod_proxy.
import type { IncomingMessage } from 'node:http';
import { connectionTokens, isHopByHop } from './hop';

export interface OutgoingOptions {
  /** Value appended to Via ("1.1 hostname"), or null when Via is off. */
  via: string | null;
  /** Send the client's Host to the member (Apache's ProxyPreserveHost On). */
  preserveHost: boolean;
}

/** Flat [name, value, ...] list, the form http.request accepts as `headers`. */
export function outgoingHeaders(req: IncomingMessage, memberAuthority: string, o: OutgoingOptions): string[] {
  const raw = req.rawHeaders;
  const tokens = connectionTokens(raw);
  const out: string[] = [];
  let host: string | undefined;
  let xff: string | undefined;
  let xfh: string | undefined;
  let via: string | undefined;
  let chunked = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    const value = raw[i + 1];
    const c = name.charCodeAt(0) | 0x20;
    if (c === 104 /* h */ || c === 120 /* x */ || c === 101 /* e */ || c === 118 /* v */ || c === 116 /* t */) {
      const lower = name.toLowerCase();
      switch (lower) {
        case 'host':
          host ??= value;
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
          // node's server already answered "100 Continue"; the member must not wait for it.
          continue;
        case 'via':
          via = via === undefined ? value : `${via}, ${value}`;
          continue;
        case 'transfer-encoding':
          chunked = true;
          continue;
      }
    }
    if (isHopByHop(name, tokens)) continue;
    out.push(name, value);
  }
  const clientIp = req.socket.remoteAddress ?? '';
  out.push('Host', o.preserveHost && host !== undefined ? host : memberAuthority);
  out.push('X-Forwarded-For', xff === undefined ? clientIp : `${xff}, ${clientIp}`);
  if (host !== undefined) out.push('X-Forwarded-Host', xfh === undefined ? host : `${xfh}, ${host}`);
  out.push('X-Forwarded-Proto', 'http');
  if (o.via !== null) out.push('Via', via === undefined ? o.via : `${via}, ${o.via}`);
  else if (via !== undefined) out.push('Via', via);
  // node frames the body itself; naming chunked makes it do so for any method.
  if (chunked) out.push('Transfer-Encoding', 'chunked');
  return out;
}

/** Whether the client request carries a body that must be streamed. */
export function hasBody(req: IncomingMessage): boolean {
  const te = req.headers['transfer-encoding'];
  if (te !== undefined) return true;
  const cl = req.headers['content-length'];
  return cl !== undefined && cl !== '0';
}
