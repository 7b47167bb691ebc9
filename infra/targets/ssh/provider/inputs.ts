/**
 * The shapes the provider's resources take and give back, checked at the
 * boundary: what arrives over gRPC is untyped, and a state written by an
 * older program may lack newer fields.
 */
import type { SshConnection } from "../remote-exec";

export interface FileProps {
  connection: SshConnection;
  path: string;
  content: string;
  mode: string;
  owner: string;
  /** sha256 of the content as it is on the host (after read) or as written. */
  hash: string;
}

export interface CommandProps {
  connection: SshConnection;
  create: string;
  update: string;
  delete: string;
  /** Exits 0 while the step's effect is in place (a service running); "" for none. */
  check: string;
  triggers: string[];
  /**
   * Runs instead of `update` when `restartTriggers` change: a service whose
   * files differ in what a reload picks up ("" for none).
   */
  restart: string;
  restartTriggers: string[];
  /** False when read found the step's effect gone (a rebuilt host, a stopped service). */
  applied: boolean;
  /** What read found, for the person reading the refresh. */
  found: string;
}

type Obj = Record<string, unknown>;

function str(o: Obj, key: string, what: string, def?: string): string {
  const v = o[key];
  if (v === undefined && def !== undefined) return def;
  if (typeof v !== "string") throw new Error(`${what}: ${key} must be a string`);
  return v;
}

export function connectionOf(v: unknown, what: string): SshConnection {
  if (typeof v !== "object" || v === null) throw new Error(`${what}: connection is missing`);
  const o = v as Obj;
  const port = o.port;
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${what}: connection.port must be a port number`);
  const hostKey = o.hostKey;
  // Without it any host at the address would do: never talk to one we cannot tell from an impostor.
  if (typeof hostKey !== "string" || hostKey === "") {
    throw new Error(
      `${what}: no host key for ${String(o.user)}@${String(o.host)}:${String(port)} (ssh.hostKey in the stack config; npm run migrate records it in a migrated stack)`,
    );
  }
  return { host: str(o, "host", what), port, user: str(o, "user", what), privateKey: str(o, "privateKey", what), hostKey };
}

export function fileProps(v: unknown, what: string): FileProps {
  const o = (v ?? {}) as Obj;
  return {
    connection: connectionOf(o.connection, what),
    path: str(o, "path", what),
    content: str(o, "content", what, ""),
    mode: str(o, "mode", what),
    owner: str(o, "owner", what),
    hash: str(o, "hash", what, ""),
  };
}

function strings(o: Obj, key: string, what: string): string[] {
  const v = o[key] ?? [];
  if (!Array.isArray(v) || v.some((t) => typeof t !== "string")) throw new Error(`${what}: ${key} must be a list of strings`);
  return v as string[];
}

export function commandProps(v: unknown, what: string): CommandProps {
  const o = (v ?? {}) as Obj;
  return {
    connection: connectionOf(o.connection, what),
    create: str(o, "create", what),
    update: str(o, "update", what, ""),
    delete: str(o, "delete", what, ""),
    check: str(o, "check", what, ""),
    triggers: strings(o, "triggers", what),
    // A state written before restarts existed has neither: no restart, nothing to compare.
    restart: str(o, "restart", what, ""),
    restartTriggers: strings(o, "restartTriggers", what),
    applied: o.applied !== false,
    found: str(o, "found", what, ""),
  };
}

/** Where a resource lives: a change of it means another host. */
export function endpoint(c: SshConnection): string {
  return `${c.user}@${c.host}:${c.port}`;
}
