// A member address that never completes a connect, on loopback: a listener
// whose accept queue is full and never drained drops every further SYN, so
// connects hang as they do to a host that vanished or was cut off.
import { spawn, ChildProcess } from "node:child_process";
import * as net from "node:net";

export interface Blackhole {
  port: number;
  url: string;
  close(): void;
}

const PY = [
  "import socket, sys, time",
  "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)",
  's.bind(("127.0.0.1", 0)); s.listen(0)',
  "print(s.getsockname()[1], flush=True)",
  "time.sleep(600)",
].join("\n");

/** Runs a Python listener that prints its port on its first line; resolves with that port. */
export async function pythonListener(src: string): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn("python3", ["-c", src], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once("error", reject);
    child.stdout?.once("data", (d: Buffer) => resolve(Number(d.toString().trim())));
  });
  return { port, child };
}

/** Connections nobody accepts, enough to fill a listener's accept queue: further SYNs to it are dropped. */
export function fillAcceptQueue(port: number, count: number): net.Socket[] {
  return Array.from({ length: count }, () => net.connect(port, "127.0.0.1").on("error", () => undefined));
}

export async function blackhole(): Promise<Blackhole> {
  const { port, child } = await pythonListener(PY);
  // From now on SYNs to the port go unanswered.
  const fillers = fillAcceptQueue(port, 3);
  await new Promise((r) => setTimeout(r, 200));
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    close: () => {
      for (const f of fillers) f.destroy();
      child.kill();
    },
  };
}
