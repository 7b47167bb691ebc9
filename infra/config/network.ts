/**
 * Addresses and networks: what a stack may name as a host, and which networks
 * Apache's `Require ip` (and proxy-node's allow list) take.
 */
import { ConfigError } from "./errors";
import { HOSTNAME_RULE, isHostname, isIPv4, isIPv6, quote } from "./grammar";

/**
 * Where Pulumi connects over SSH: an IP address (v4 or v6) or a host name.
 * Nothing else: the value is only ever an endpoint.
 */
export function checkSshHost(key: string, value: string): void {
  if (!isIPv4(value) && !isIPv6(value) && !isHostname(value)) {
    throw new ConfigError(key, `${quote(value)} is not accepted; use ${HOSTNAME_RULE}`);
  }
}

/**
 * How the other hosts reach a host: an IPv4 address or a host name. It lands in
 * MariaDB's grants and bind-address, the NFS exports, the NFS mount line and the
 * balancer's member URLs; the last two would need IPv6 in brackets, so IPv6 is
 * refused rather than written wrongly. Loopback is refused too: every other host
 * would reach itself, and MariaDB's own root@localhost would be the grant's target.
 */
export function checkClusterAddress(key: string, value: string): void {
  const ok = isIPv4(value) || isHostname(value);
  if (!ok) {
    const v6 = isIPv6(value) ? " (IPv6 cluster addresses are not supported)" : "";
    throw new ConfigError(key, `${quote(value)} is not accepted${v6}; use an IPv4 address or a host name (letters, digits, - and . only)`);
  }
  if (/^127\./.test(value) || value.toLowerCase() === "localhost" || value.toLowerCase().endsWith(".localhost")) {
    throw new ConfigError(key, `${quote(value)} is a loopback address; use the address the other hosts reach this host at`);
  }
}

interface Network {
  family: 4 | 6;
  bytes: number[];
  prefix: number;
}

function bytesOf(addr: string, family: 4 | 6): number[] {
  if (family === 4) return addr.split(".").map(Number);
  const halves = addr.split("::");
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  const groups = [...head, ...Array<string>(8 - head.length - tail.length).fill("0"), ...tail].map((g) => parseInt(g, 16));
  return groups.flatMap((g) => [g >> 8, g & 0xff]);
}

/** An address or address/prefix in network form; undefined when it is not one. */
function parseNetwork(text: string): Network | undefined {
  const m = /^([^/]+)(?:\/(0|[1-9]\d{0,2}))?$/.exec(text);
  if (!m) return undefined;
  const family = isIPv4(m[1]) ? 4 : isIPv6(m[1]) ? 6 : 0;
  if (family === 0) return undefined;
  const max = family === 4 ? 32 : 128;
  const prefix = m[2] === undefined ? max : Number(m[2]);
  if (prefix > max) return undefined;
  return { family, bytes: bytesOf(m[1], family), prefix };
}

/** True when the address has bits set beyond its prefix (10.0.0.1/8): not a network address. */
function hostBitsSet(n: Network): boolean {
  return n.bytes.some((b, i) => {
    const keep = Math.max(0, Math.min(8, n.prefix - i * 8));
    return (b & (0xff >> keep)) !== 0;
  });
}

/**
 * A network as Apache's `Require ip` accepts it and as it was meant: an address, or
 * a network address with a prefix of 1 or more (Apache refuses /0). No zone ids, no
 * embedded IPv4 in IPv6, no host bits beyond the prefix (10.0.0.1/8 would silently
 * mean all of 10.0.0.0/8).
 */
export function checkRequireIp(key: string, value: string): void {
  const n = parseNetwork(value);
  const accepted = "use an IP address or a network such as 10.0.0.0/8 or 2001:db8::/32 (prefix 1 or more, no zone id)";
  if (!n) throw new ConfigError(key, `${quote(value)} is not accepted; ${accepted}`);
  if (n.prefix === 0) throw new ConfigError(key, `${quote(value)} is not accepted: Apache's Require ip refuses a /0 network; ${accepted}`);
  if (hostBitsSet(n)) {
    throw new ConfigError(key, `${quote(value)} has address bits set beyond /${n.prefix}; use the network address of that block`);
  }
}

/** An IPv4 block in network form, for docker networks (which refuse host bits too). */
export function checkIPv4Block(key: string, value: string, maxPrefix: number): void {
  const n = parseNetwork(value);
  const accepted = `use an IPv4 block of /${maxPrefix} or larger, such as 172.30.58.0/24`;
  if (!n || n.family !== 4 || !value.includes("/") || n.prefix > maxPrefix || n.prefix < 8 || hostBitsSet(n)) {
    throw new ConfigError(key, `${quote(value)} is not accepted; ${accepted}`);
  }
}
