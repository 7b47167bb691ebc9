/**
 * Runs shell on a host over SSH with the key held in memory (ssh2): the private key
 * is never written to the machine that runs Pulumi. Runs inside our provider
 * plugin (infra/targets/ssh/provider), so it imports nothing of the program.
 */
import { createHash } from "node:crypto";
import { Client, ServerHostKeyAlgorithm } from "ssh2";

export interface SshConnection {
  host: string;
  port: number;
  user: string;
  privateKey: string;
  /**
   * The host's public key as an OpenSSH line ("ssh-ed25519 AAAA..."). When set,
   * a host presenting any other key is refused during the handshake, before
   * anything (credentials included) is sent to it.
   */
  hostKey?: string;
}

/** A host key that is not the recorded one: never retried. */
export class HostKeyMismatch extends Error {}

/** A host that did not let us in for a minute: gone, off, or cut off. */
export class HostUnreachable extends Error {}

/** OpenSSH's fingerprint of a public key blob: SHA256:<base64 without padding>. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/** ssh-keyscan's and ssh-keygen's name for a key type ("ssh-ed25519" is "ed25519"). */
function keyscanType(type: string): string {
  if (type.startsWith("ecdsa-")) return "ecdsa";
  return type === "ssh-rsa" ? "rsa" : type.replace(/^ssh-/, "");
}

/**
 * The signature algorithms that prove the recorded key: an RSA key signs with
 * SHA-2 on OpenSSH 8.8 and later, which no longer offers ssh-rsa (SHA-1).
 */
function hostKeyAlgorithms(type: string): ServerHostKeyAlgorithm[] {
  // The type was checked against these names when the stack config was read (infra/config/host-keys.ts).
  return type === "ssh-rsa" ? ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] : [type as ServerHostKeyAlgorithm];
}

/** The key type and blob of an OpenSSH public key line. */
export function parseHostKey(line: string): { type: string; blob: Buffer } {
  const [type, b64] = line.trim().split(/\s+/);
  const blob = Buffer.from(b64 ?? "", "base64");
  if (!type || blob.length === 0) throw new Error(`not an OpenSSH public key line: ${JSON.stringify(line.slice(0, 40))}`);
  return { type, blob };
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function connect(conn: SshConnection): Promise<Client> {
  return new Promise((resolve, reject) => {
    const c = new Client();
    let mismatch: HostKeyMismatch | null = null;
    c.once("ready", () => resolve(c));
    c.once("error", (e) => reject(mismatch ?? e));
    const expected = conn.hostKey ? parseHostKey(conn.hostKey) : null;
    c.connect({
      host: conn.host,
      port: conn.port,
      username: conn.user,
      privateKey: conn.privateKey,
      readyTimeout: 20000,
      // Ask for the recorded key's type, so a host with several keys shows that one.
      ...(expected ? { algorithms: { serverHostKey: hostKeyAlgorithms(expected.type) } } : {}),
      hostVerifier: (key: Buffer): boolean => {
        if (expected === null || key.equals(expected.blob)) return true;
        mismatch = new HostKeyMismatch(
          `ssh ${conn.user}@${conn.host}:${conn.port}: the host key does not match the one recorded for this host (ssh.hostKey): ` +
            `expected ${fingerprint(expected.blob)}, the host presented ${fingerprint(key)}. Nothing was sent to it. ` +
            `If the host was rebuilt on purpose, check the new key on the host (ssh-keygen -lf /etc/ssh/ssh_host_${keyscanType(expected.type)}_key.pub), ` +
            `set it as the host's ssh.hostKey (ssh-keyscan -p ${conn.port} -t ${keyscanType(expected.type)} ${conn.host} prints the line), ` +
            `then run \`npm run up -- --no-refresh\` once: a refresh would still ask the host for the key recorded in the stack's state.`,
        );
        return false;
      },
    });
  });
}

/**
 * Hosts that were just created may not accept SSH yet: try for up to a minute.
 * Exported for the backup (scripts/backup), which streams over the same checked connection.
 */
export async function connectWithRetry(conn: SshConnection): Promise<Client> {
  const deadline = Date.now() + 60000;
  for (;;) {
    try {
      return await connect(conn);
    } catch (e) {
      if (e instanceof HostKeyMismatch) throw e;
      const msg = e instanceof Error ? e.message : String(e);
      if (/authentication|All configured authentication methods failed/i.test(msg))
        throw new Error(`ssh ${conn.user}@${conn.host}:${conn.port}: ${msg}`, { cause: e });
      if (Date.now() > deadline) throw new HostUnreachable(`ssh ${conn.user}@${conn.host}:${conn.port}: no answer for a minute (${msg})`, { cause: e });
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

/** Runs `script` with bash -e; stdin, when given, is fed to it. Fails with the tail of its output. */
export async function runRemote(conn: SshConnection, what: string, script: string, stdin?: string): Promise<RunResult> {
  const result = await execRemote(conn, script, stdin);
  if (result.code !== 0) {
    const tail = (result.stderr || result.stdout).trim().split("\n").slice(-15).join("\n");
    throw new Error(`${what} on ${conn.host}:${conn.port} exited ${result.code}:\n${tail}`);
  }
  return result;
}

/** Runs `script` with bash -e and reports how it ended, whatever the exit code. */
export async function execRemote(conn: SshConnection, script: string, stdin?: string): Promise<RunResult> {
  const client = await connectWithRetry(conn);
  try {
    return await new Promise<RunResult>((resolve, reject) => {
      client.exec(`bash -ec ${shellQuote(script)}`, (err, stream) => {
        if (err) return reject(err);
        let stdout = "";
        let stderr = "";
        stream.on("data", (d: Buffer) => (stdout += d.toString()));
        stream.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        stream.on("close", (code: number | null) => resolve({ code: code ?? -1, stdout, stderr }));
        if (stdin !== undefined) stream.end(stdin);
        else stream.end();
      });
    });
  } finally {
    client.end();
  }
}

export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Writes a file atomically (temp file + rename). When we first create a file
 * that was there before us (a package's ports.conf), a copy is kept to restore
 * on destroy; an update replaces what we wrote ourselves, which is never kept
 * (our compiled JavaScript carries no "drupal-cluster" mark to tell it by).
 */
export async function writeRemoteFile(conn: SshConnection, path: string, content: string, mode: string, owner: string, keepOriginal: boolean): Promise<void> {
  const p = shellQuote(path);
  const script = [
    `d=$(dirname ${p}); mkdir -p "$d"`,
    keepOriginal
      ? `if [ -e ${p} ] && [ ! -e ${p}.drupal-cluster-orig ] && ! grep -q 'drupal-cluster' ${p} 2>/dev/null; then cp -p ${p} ${p}.drupal-cluster-orig; fi`
      : "",
    `t=$(mktemp "$d/.drupal-cluster.XXXXXX")`,
    `cat > "$t"`,
    `chmod ${shellQuote(mode)} "$t"; chown ${shellQuote(owner)} "$t"`,
    `mv -f "$t" ${p}`,
  ].join("\n");
  await runRemote(conn, `writing ${path}`, script, content);
}

export async function removeRemoteFile(conn: SshConnection, path: string): Promise<void> {
  const p = shellQuote(path);
  await runRemote(conn, `removing ${path}`, `if [ -e ${p}.drupal-cluster-orig ]; then mv -f ${p}.drupal-cluster-orig ${p}; else rm -f ${p}; fi`);
}

export interface RemoteFileState {
  /** sha256 of the bytes on the host. */
  hash: string;
  /** Octal mode as stat prints it ("644"). */
  mode: string;
  /** user:group */
  owner: string;
}

/** The file as it is on the host, or null when it is not there. */
export async function statRemoteFile(conn: SshConnection, path: string): Promise<RemoteFileState | null> {
  const p = shellQuote(path);
  const r = await runRemote(conn, `reading ${path}`, `if [ -f ${p} ]; then stat -c '%a %U:%G' ${p}; sha256sum < ${p}; else echo absent; fi`);
  const [first, second] = r.stdout.trim().split("\n");
  if (first === "absent") return null;
  const [mode, owner] = first.split(" ");
  return { mode, owner, hash: (second ?? "").split(" ")[0] };
}
