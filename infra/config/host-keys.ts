/**
 * SSH host keys: every ssh host carries its public key (ssh.hostKey), so the
 * secrets we deliver go only to the host that holds the matching private key.
 * Local hosts (the dev stack) get theirs from scripts/local-hosts.ts, which
 * makes the key pairs, as `localHostKeys: {<host name>: <key>}`.
 */
import { ConfigError } from "./errors";
import { ConfigReader } from "./reader";
import { HostModel } from "../model/types";

const KEY_TYPES = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa"];
const LINE = /^(\S+) ([A-Za-z0-9+/]+={0,2})(?: [^\r\n]*)?$/;

/**
 * The "type base64" part of an OpenSSH public key line (a trailing comment is
 * dropped), or a ConfigError naming `key`. The blob must be a key of that type.
 */
export function parseHostKeyLine(key: string, line: string, hostName: string): string {
  const m = LINE.exec(line.trim());
  const blob = m ? Buffer.from(m[2], "base64") : Buffer.alloc(0);
  // The SSH wire format starts with the key type as a length-prefixed string.
  const typeInBlob = blob.length > 4 ? blob.subarray(4, 4 + blob.readUInt32BE(0)).toString("latin1") : "";
  if (!m || !KEY_TYPES.includes(m[1]) || typeInBlob !== m[1]) {
    throw new ConfigError(
      key,
      `host ${hostName}: not an SSH public key line; use one line as ssh-keyscan prints it, such as "ssh-ed25519 AAAAC3Nza..." (types: ${KEY_TYPES.join(", ")})`,
    );
  }
  return `${m[1]} ${m[2]}`;
}

/** localHostKeys: {<host name>: <key line>}, only next to localHosts. */
export function readLocalHostKeys(root: ConfigReader, hostNames: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  if (!root.has("localHostKeys")) return out;
  const r = root.child("localHostKeys");
  if (!root.has("localHosts")) throw new ConfigError(r.key, "is only used with localHosts (scripts/local-hosts.ts records the keys of the hosts it makes)");
  for (const name of r.names()) {
    if (!hostNames.includes(name)) throw new ConfigError(`${r.key}.${name}`, `names no host of this stack; hosts: ${hostNames.join(", ")}`);
    out.set(name, parseHostKeyLine(`${r.key}.${name}`, r.string(name), name));
  }
  return out;
}

/**
 * Gives every ssh host its key: its own ssh.hostKey, else the recorded local
 * one. Without either, a stack of existing hosts stops here, naming the host
 * and the command that prints its key.
 */
export function attachHostKeys(hosts: ReadonlyArray<{ host: HostModel; key: string }>, recorded: Map<string, string>, localHosts: boolean): void {
  for (const { host, key } of hosts) {
    const ssh = host.ssh;
    if (!ssh) continue;
    if (ssh.hostKey !== undefined) {
      ssh.hostKey = parseHostKeyLine(`${key}.ssh.hostKey`, ssh.hostKey, host.name);
      continue;
    }
    const local = recorded.get(host.name);
    if (local !== undefined) ssh.hostKey = local;
    else if (!localHosts) {
      throw new ConfigError(
        `${key}.ssh.hostKey`,
        `host ${host.name} (${ssh.user}@${ssh.host}:${ssh.port}) has no host key, so it could not be told from an impostor. ` +
          `Print it with \`ssh-keyscan -p ${ssh.port} -t ed25519 ${ssh.host}\`, compare its fingerprint with \`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub\` run on the host itself, ` +
          `and set the line as ${key}.ssh.hostKey in the stack file`,
      );
    }
  }
}
