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

export async function blackhole(): Promise<Blackhole> {
  const child: ChildProcess = spawn("python3", ["-c", PY], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once("error", reject);
    child.stdout?.once("data", (d: Buffer) => resolve(Number(d.toString().trim())));
  });
  // Fill the accept queue; from now on SYNs to the port go unanswered.
  const fillers = [0, 1, 2].map(() => net.connect(port, "127.0.0.1").on("error", () => undefined));
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
