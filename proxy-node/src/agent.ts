// Agent mode: proxy-node beside Apache. Member state changes are made in
// Apache's balancer-manager the way a browser would: GET the page for the
// nonce and worker names, then POST the change with a Referer naming the
// manager (Apache 2.4 refuses changes without it).
import * as http from "node:http";
import type { Logger } from "./log";

export type WorkerFlag = "D" | "N" | "S" | "H" | "R" | "I" | "C";

interface Page {
  nonce: string;
  workers: string[];
}

/** One request to the balancer-manager: a GET without a body, a POST with one. */
function managerRequest(url: string, headers: Record<string, string>, body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: body === undefined ? "GET" : "POST", headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.setTimeout(5000, () => req.destroy(new Error("balancer-manager timeout")));
    req.on("error", reject);
    req.end(body);
  });
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** "http://lb1" and "http://lb1:80/" name the same worker. */
export function sameWorker(a: string, b: string): boolean {
  const norm = (u: string): string => {
    const m = /^([a-z]+):\/\/([^/:]+)(?::(\d+))?/i.exec(u.trim());
    if (!m) return u;
    const port = m[3] ?? (m[1].toLowerCase() === "https" ? "443" : "80");
    return `${m[1].toLowerCase()}://${m[2].toLowerCase()}:${port}`;
  };
  return norm(a) === norm(b);
}

/** Reads the nonce and worker names for `balancer` from the balancer-manager HTML. */
export function parseManagerPage(html: string, balancer: string): Page | null {
  const re = /[?&](?:amp;)?b=([^&"'\s]+)&(?:amp;)?w=([^&"'\s]+)&(?:amp;)?nonce=([^&"'\s]+)/g;
  let nonce = "";
  const workers: string[] = [];
  for (let m = re.exec(html); m !== null; m = re.exec(html)) {
    if (decode(m[1]) !== balancer) continue;
    nonce = decode(m[3]);
    const w = decode(m[2]);
    if (!workers.includes(w)) workers.push(w);
  }
  return nonce ? { nonce, workers } : null;
}

export class ApacheAgent {
  constructor(
    private cfg: { managerUrl: string; balancer: string },
    private logger: Logger,
  ) {}

  /** The balancer-manager page as Apache shows it now. */
  async readPage(): Promise<string> {
    const res = await managerRequest(this.cfg.managerUrl, { Accept: "text/html", Referer: this.cfg.managerUrl });
    if (res.status !== 200) throw new Error(`GET ${this.cfg.managerUrl} answered ${res.status}`);
    return res.text;
  }

  get balancer(): string {
    return this.cfg.balancer;
  }

  /** `fields`: other balancer-manager form fields, e.g. w_lf (load factor), w_wr (route). */
  async setFlags(memberUrl: string, flags: Partial<Record<WorkerFlag, 0 | 1>>, fields: Record<string, string> = {}): Promise<boolean> {
    try {
      // Referer on the read too: Apache logs AH10187 for manager requests without one.
      const pageRes = await managerRequest(this.cfg.managerUrl, { Accept: "text/html", Referer: this.cfg.managerUrl });
      if (pageRes.status !== 200) throw new Error(`GET ${this.cfg.managerUrl} answered ${pageRes.status}`);
      const page = parseManagerPage(pageRes.text, this.cfg.balancer);
      if (!page) throw new Error(`no balancer ${this.cfg.balancer} with a nonce on ${this.cfg.managerUrl}`);
      const worker = page.workers.find((w) => sameWorker(w, memberUrl));
      if (!worker) throw new Error(`Apache has no worker ${memberUrl} in balancer ${this.cfg.balancer}`);
      const form = new URLSearchParams({ b: this.cfg.balancer, w: worker, nonce: page.nonce });
      for (const [flag, v] of Object.entries(flags)) form.set(`w_status_${flag}`, String(v));
      for (const [k, v] of Object.entries(fields)) form.set(k, v);
      const body = form.toString();
      const res = await managerRequest(
        this.cfg.managerUrl,
        {
          "Content-Type": "application/x-www-form-urlencoded",
          "Content-Length": String(Buffer.byteLength(body)),
          Referer: this.cfg.managerUrl,
        },
        body,
      );
      if (res.status !== 200) throw new Error(`POST ${this.cfg.managerUrl} answered ${res.status}`);
      this.logger.event("info", "apache worker updated", { worker, flags, ...fields });
      return true;
    } catch (e) {
      this.logger.event("error", "apache balancer-manager update failed", { member: memberUrl, flags, error: (e as Error).message });
      return false;
    }
  }

  /** An administrative disable (D), as an operator's; health checks use setHealth. */
  setEnabled(memberUrl: string, enabled: boolean): Promise<boolean> {
    return this.setFlags(memberUrl, { D: enabled ? 0 : 1 });
  }

  /**
   * A health check's verdict goes to Apache's own health-check flag (C, shown
   * "HcFl", the one mod_proxy_hcheck sets), never to D: D belongs to the
   * operator. Sharing one flag, a recovery would clear an operator's disable,
   * and a D seen in the page could not be told apart from a failed check
   * (apache-watch.ts carries D to the peer balancer, and must not carry a
   * check that each balancer makes on its own). Apache treats C like D: the
   * worker takes no requests and its sticky clients fail over.
   */
  setHealth(memberUrl: string, healthy: boolean): Promise<boolean> {
    return this.setFlags(memberUrl, { C: healthy ? 0 : 1 });
  }
}
