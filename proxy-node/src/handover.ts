// Replacing the running process with the code on disk without refusing a
// connection, as nginx's binary upgrade does: on SIGUSR2 the running process
// starts the bin again and lends it its listening sockets (inherited file
// descriptors, named in one environment variable). The successor serves on
// them and says so; only then does the old process stop accepting, finish the
// requests it has, and exit. A successor that cannot serve (it crashes, its
// config names other addresses) is killed and the old process goes on.
//
// The protocol is the environment variable and one IPC message; any later
// version must keep reading both, since the process handing over is the old code.
import { spawn, execFile } from "node:child_process";
import { renameSync, writeFileSync } from "node:fs";
import type * as net from "node:net";
import type { PeerMember } from "./peers";

/** The listeners a process can lend: the clients' port, the HTTPS port, the manager's port. */
export type ListenerName = "client" | "https" | "manager";

/** What the successor finds in its environment: its listeners' descriptors and the members' administrative state. */
export interface Inheritance {
  v: 1;
  listeners: Partial<Record<ListenerName, number>>;
  members: PeerMember[];
}

export const HANDOVER_ENV = "PROXY_NODE_HANDOVER";
/** How long a successor may take to serve before the old process gives up on it. */
export const READY_MS = 30_000;
/** The message the successor sends on its IPC channel once it serves. */
const READY = "proxy-node:handover-ready";

/**
 * The inheritance this process was started with, if any; removed from the
 * environment so cluster workers and a later successor never read it again.
 */
export function takeInheritance(env: NodeJS.ProcessEnv = process.env): Inheritance | null {
  const raw = env[HANDOVER_ENV];
  if (raw === undefined) return null;
  delete env[HANDOVER_ENV];
  const v = JSON.parse(raw) as Partial<Inheritance>;
  if (v.v !== 1 || typeof v.listeners !== "object" || v.listeners === null) throw new Error(`${HANDOVER_ENV}: not a handover this version reads`);
  return { v: 1, listeners: v.listeners, members: Array.isArray(v.members) ? v.members : [] };
}

/** The descriptor of a listening server, to pass on (node's handle, Unix only). */
function descriptor(server: net.Server): number {
  const fd = (server as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== "number" || fd < 0) throw new Error("a listener has no file descriptor to hand over");
  return fd;
}

/**
 * Starts the bin on disk with this process's arguments and listeners; resolves
 * with its pid once it serves, rejects (having killed it) when it exits or
 * stays silent for READY_MS.
 */
export function startSuccessor(listeners: Partial<Record<ListenerName, net.Server>>, members: PeerMember[], readyMs = READY_MS): Promise<number> {
  const names = (Object.keys(listeners) as ListenerName[]).filter((n) => listeners[n]);
  // Descriptor 3 is the IPC channel; the listeners follow it in order.
  const fds = names.map((n) => descriptor(listeners[n] as net.Server));
  const inherited: Inheritance = { v: 1, listeners: Object.fromEntries(names.map((n, i) => [n, 4 + i])), members };
  // node's own flags (the bin's shebang) with the script as it is on disk now.
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: ["ignore", "inherit", "inherit", "ipc", ...fds],
    env: { ...process.env, [HANDOVER_ENV]: JSON.stringify(inherited) },
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(`no answer within ${readyMs} ms`), readyMs);
    const onExit = (code: number | null, signal: string | null): void => fail(`it exited (${signal ?? `code ${code}`}) before serving`);
    const fail = (why: string): void => {
      clearTimeout(timer);
      child.off("exit", onExit);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      reject(new Error(`the new process ${child.pid ?? "(not started)"} cannot take over: ${why}`));
    };
    child.once("exit", onExit);
    child.once("error", (e) => fail(e.message));
    child.on("message", (m: unknown) => {
      if (m !== READY) return;
      clearTimeout(timer);
      child.off("exit", onExit);
      // From here the successor lives on its own; nothing more goes between the two.
      child.disconnect();
      child.unref();
      resolve(child.pid as number);
    });
  });
}

/** In the successor, once it serves: tells the process that started it. */
export function announceReady(): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) return resolve();
    process.send(READY, () => {
      if (process.connected) process.disconnect();
      resolve();
    });
  });
}

/** Writes this process's pid where a supervisor reads it (beside and renamed: never half a number). */
export function writePidfile(path: string, pid = process.pid): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${pid}\n`);
  renameSync(tmp, path);
}

/**
 * Under systemd (NOTIFY_SOCKET set: the unit has NotifyAccess), names the
 * successor as the service's main process before this one exits; otherwise
 * systemd would take the old one's exit for the service's end and stop the
 * new one with it. node has no datagram Unix sockets, so systemd-notify sends it.
 */
export function tellSystemd(pid: number): Promise<void> {
  if (!process.env.NOTIFY_SOCKET) return Promise.resolve();
  return new Promise((resolve, reject) => {
    execFile("systemd-notify", [`--pid=${pid}`], { timeout: 5000 }, (e, _out, err) => {
      if (e) reject(new Error(`systemd-notify --pid=${pid}: ${err.trim() || e.message}`));
      else resolve();
    });
  });
}
