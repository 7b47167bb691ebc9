/**
 * Shell on a cluster host with its stdin and stdout as streams, for transfers
 * too large to hold in memory (a database dump, the shared files). The
 * connection is the provider's own (infra/targets/ssh/remote-exec.ts): the key
 * from the stack's secret held in memory, and the recorded host key checked
 * during the handshake, so a host with another key gets nothing, credentials
 * included.
 */
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Client, ClientChannel } from "ssh2";
import { connectWithRetry, shellQuote, SshConnection } from "../../infra/targets/ssh/remote-exec";

export interface RemoteResult {
  code: number;
  /** stdout when no stream took it (short answers: versions, checks). */
  stdout: string;
  /** The last 16 KiB of stderr: enough for an error, bounded for a chatty tool. */
  stderr: string;
}

export interface RemoteIo {
  /** Fed to the script's stdin, then EOF. Without it, stdin is closed at once. */
  stdin?: Readable;
  /** Takes the script's stdout; without it, stdout is collected (up to 1 MiB). */
  stdout?: Writable;
}

/** One host the backup reads from or the restore writes to. */
export interface Remote {
  /** For messages: "data (root@127.0.0.1:2210)". */
  readonly label: string;
  /**
   * Runs `script` with `bash -e -o pipefail` (a failing producer in a pipe
   * fails the script, so a dump cut short is never taken for a whole one).
   */
  run(script: string, io?: RemoteIo): Promise<RemoteResult>;
}

const STDERR_KEEP = 16 * 1024;
const STDOUT_KEEP = 1024 * 1024;

/** Fails with the script's own words: the tail of stderr (or stdout), and the exit code. */
export async function runChecked(remote: Remote, what: string, script: string, io?: RemoteIo): Promise<RemoteResult> {
  const r = await remote.run(script, io);
  if (r.code !== 0) {
    const tail = (r.stderr || r.stdout).trim().split("\n").slice(-10).join("\n");
    throw new Error(`${what} on ${remote.label} exited ${r.code}${tail ? `:\n${tail}` : ""}`);
  }
  return r;
}

export function sshRemote(name: string, conn: SshConnection): Remote {
  return {
    label: `${name} (${conn.user}@${conn.host}:${conn.port})`,
    run: (script, io = {}) => streamExec(conn, script, io),
  };
}

async function streamExec(conn: SshConnection, script: string, io: RemoteIo): Promise<RemoteResult> {
  const client = await connectWithRetry(conn);
  try {
    return await new Promise<RemoteResult>((resolve, reject) => {
      client.exec(`bash -e -o pipefail -c ${shellQuote(script)}`, (err, channel) => {
        if (err) return reject(err);
        // Every listener is attached here, synchronously: a quick command's exit
        // status can arrive in the same tick as the channel, before the
        // continuation of an awaited promise would run, and would be missed.
        watch(client, channel, io, `${conn.user}@${conn.host}:${conn.port}`).then(resolve, reject);
      });
    });
  } finally {
    client.end();
  }
}

function watch(client: Client, channel: ClientChannel, io: RemoteIo, where: string): Promise<RemoteResult> {
  let stderr = "";
  channel.stderr.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-STDERR_KEEP)));
  let stdout = "";
  if (!io.stdout) channel.on("data", (d: Buffer) => (stdout = (stdout + d.toString()).slice(0, STDOUT_KEEP)));
  let code = -1;
  channel.on("exit", (c: number | null) => (code = c ?? -1));
  // The channel closes when the command ended and its output was read; the
  // connection closing (the host went away) ends the wait too.
  const closed = new Promise<void>((resolve) => {
    channel.once("close", () => resolve());
    client.once("close", () => resolve());
  });
  const transfers: Array<Promise<void>> = [];
  if (io.stdout) transfers.push(pipeline(channel, io.stdout));
  if (io.stdin) transfers.push(pipeline(io.stdin, channel));
  else channel.end();
  // A local failure (disk full, a file that cannot be read) must not leave the
  // remote side blocked on a full window: the connection is dropped, which ends
  // the remote command too. A remote command that ends early (an error) makes
  // our side of the transfer fail as well: its exit status says more, so it wins.
  let localError: unknown;
  const watched = transfers.map((t) =>
    t.catch((e: unknown) => {
      localError ??= e;
      client.end();
    }),
  );
  return (async (): Promise<RemoteResult> => {
    await closed;
    await Promise.all(watched);
    if (localError !== undefined && (code === 0 || code === -1)) {
      const why = localError instanceof Error ? localError.message : String(localError);
      throw new Error(`transfer with ${where} failed: ${why}${stderr.trim() ? `\n${stderr.trim()}` : ""}`);
    }
    return { code, stdout, stderr };
  })();
}
