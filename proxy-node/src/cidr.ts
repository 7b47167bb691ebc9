// IPv4 and IPv6 CIDR matching for the manager allowlist. Node reports IPv4
// clients on dual-stack sockets as ::ffff:a.b.c.d, so those are unwrapped.
import { isIPv4, isIPv6 } from "node:net";

export interface Cidr {
  v6: boolean;
  bytes: Uint8Array;
  bits: number;
}

function v4Bytes(ip: string): Uint8Array {
  return Uint8Array.from(ip.split(".").map(Number));
}

function v6Bytes(ip: string): Uint8Array | null {
  let s = ip;
  const lastColon = s.lastIndexOf(":");
  const maybeV4 = s.slice(lastColon + 1);
  if (isIPv4(maybeV4)) {
    const b = v4Bytes(maybeV4);
    s = s.slice(0, lastColon + 1) + ((b[0] << 8) | b[1]).toString(16) + ":" + ((b[2] << 8) | b[3]).toString(16);
  }
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const head = halves[0] ? halves[0].split(":") : [];
  const rest = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  const fill = 8 - head.length - rest.length;
  if (fill < 0 || (halves.length === 1 && fill !== 0)) return null;
  const groups = [...head, ...Array<string>(halves.length === 2 ? fill : 0).fill("0"), ...rest].map((g) => parseInt(g, 16));
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  return out;
}

export function parseCidr(text: string): Cidr | null {
  const [ip, bitsText, extra] = text.split("/");
  if (extra !== undefined) return null;
  const v6 = isIPv6(ip);
  if (!v6 && !isIPv4(ip)) return null;
  const max = v6 ? 128 : 32;
  const bits = bitsText === undefined ? max : /^[0-9]{1,3}$/.test(bitsText) ? Number(bitsText) : -1;
  if (bits < 0 || bits > max) return null;
  const bytes = v6 ? v6Bytes(ip) : v4Bytes(ip);
  return bytes ? { v6, bytes, bits } : null;
}

function matches(c: Cidr, b: Uint8Array): boolean {
  let bits = c.bits;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((c.bytes[i] & mask) !== (b[i] & mask)) return false;
  }
  return true;
}

/**
 * An IPv4 client as IPv4: a socket bound to [::] that also takes IPv4 (as the
 * balancer's client port is, like Apache's `Listen <port>`) sees it as
 * ::ffff:a.b.c.d, which X-Forwarded-For and the logs must not carry.
 */
export function unmapped(address: string): string {
  return address.startsWith("::ffff:") && isIPv4(address.slice(7)) ? address.slice(7) : address;
}

export function ipAllowed(address: string | undefined, allow: readonly Cidr[]): boolean {
  if (!address) return false;
  const ip = unmapped(address);
  const v6 = isIPv6(ip);
  if (!v6 && !isIPv4(ip)) return false;
  const bytes = v6 ? v6Bytes(ip) : v4Bytes(ip);
  if (!bytes) return false;
  for (const c of allow) {
    if (c.v6 === v6 && matches(c, bytes)) return true;
  }
  return false;
}
