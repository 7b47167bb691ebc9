import { spawn } from "node:child_process";
import { Secret } from "./secret";

/**
 * A machine outside the managers' allowlist, which verify reaches through a
 * command that runs curl there: `ssh ops@203.0.113.9 curl`, or for local
 * hosts `docker exec -i <container> curl --connect-to ...`. Verify appends
 * curl's arguments and the URL; a header that carries the token goes on curl's
 * stdin (`-H @-`), never on a command line, where `ps` would show it.
 */
export interface OutsideVantage {
  /** The command, for the printout (it holds no secret). */
  command: string;
  /** Status code of a GET from there, or why there was none. */
  get(url: string, bearer?: Secret): Promise<{ status?: number; said: string }>;
}

export function curlVantage(command: string, timeoutS = 10): OutsideVantage {
  return {
    command,
    get: (url, bearer) =>
      new Promise((resolve) => {
        const args = ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", String(timeoutS), ...(bearer ? ["-H", "@-"] : []), "--", url];
        // "$@" passes verify's arguments through the shell unchanged, after the operator's command.
        const child = spawn("sh", ["-c", `${command} "$@"`, "verify-outside", ...args], { stdio: ["pipe", "pipe", "pipe"] });
        let out = "";
        let err = "";
        child.stdout.on("data", (d: Buffer) => (out += d.toString()));
        child.stderr.on("data", (d: Buffer) => (err += d.toString()));
        child.on("error", (e) => resolve({ said: `could not run ${command}: ${e.message}` }));
        child.on("close", (code) => {
          const status = /^\d{3}$/.test(out.trim()) ? Number(out.trim()) : 0;
          if (status > 0) resolve({ status, said: String(status) });
          else resolve({ said: `no answer from there (exit ${code}${err.trim() ? `: ${err.trim().split("\n").pop()}` : ""})` });
        });
        child.stdin.on("error", () => undefined);
        child.stdin.end(bearer ? `Authorization: Bearer ${bearer.reveal()}\n` : "");
      }),
  };
}
