/**
 * Runs shell on a host over SSH with the key held in memory (ssh2): the private key
 * is never written to the machine that runs Pulumi. Loaded inside Pulumi's dynamic
 * provider process, so it imports nothing of ours.
 */
import { Client } from "ssh2";

export interface SshConnection {
  host: string;
  port: number;
  user: string;
  privateKey: string;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function connect(conn: SshConnection): Promise<Client> {
  return new Promise((resolve, reject) => {
    const c = new Client();
    c.once("ready", () => resolve(c));
    c.once("error", (e) => reject(e));
    c.connect({ host: conn.host, port: conn.port, username: conn.user, privateKey: conn.privateKey, readyTimeout: 20000 });
  });
}

/** Hosts that were just created may not accept SSH yet: try for up to a minute. */
async function connectWithRetry(conn: SshConnection): Promise<Client> {
  const deadline = Date.now() + 60000;
  for (;;) {
    try {
      return await connect(conn);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      if (/authentication|All configured authentication methods failed/i.test(msg) || Date.now() > deadline) {
        throw new Error(`ssh ${conn.user}@${conn.host}:${conn.port}: ${msg}`);
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

/** Runs `script` with bash -e; stdin, when given, is fed to it. Fails with the tail of its output. */
export async function runRemote(conn: SshConnection, what: string, script: string, stdin?: string): Promise<RunResult> {
  const client = await connectWithRetry(conn);
  try {
    const result = await new Promise<RunResult>((resolve, reject) => {
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
    if (result.code !== 0) {
      const tail = (result.stderr || result.stdout).trim().split("\n").slice(-15).join("\n");
      throw new Error(`${what} on ${conn.host}:${conn.port} exited ${result.code}:\n${tail}`);
    }
    return result;
  } finally {
    client.end();
  }
}

export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Writes a file atomically (temp file + rename). The first time we replace a file
 * that was not ours (a package's ports.conf), a copy is kept to restore on destroy.
 */
export async function writeRemoteFile(conn: SshConnection, path: string, content: string, mode: string, owner: string): Promise<void> {
  const p = shellQuote(path);
  const script = [
    `d=$(dirname ${p}); mkdir -p "$d"`,
    `if [ -e ${p} ] && [ ! -e ${p}.drupal-cluster-orig ] && ! grep -q 'drupal-cluster' ${p} 2>/dev/null; then cp -p ${p} ${p}.drupal-cluster-orig; fi`,
    `t=$(mktemp "$d/.drupal-cluster.XXXXXX")`,
    `cat > "$t"`,
    `chmod ${mode} "$t"; chown ${owner} "$t"`,
    `mv -f "$t" ${p}`,
  ].join("\n");
  await runRemote(conn, `writing ${path}`, script, content);
}

export async function removeRemoteFile(conn: SshConnection, path: string): Promise<void> {
  const p = shellQuote(path);
  await runRemote(conn, `removing ${path}`, `if [ -e ${p}.drupal-cluster-orig ]; then mv -f ${p}.drupal-cluster-orig ${p}; else rm -f ${p}; fi`);
}
