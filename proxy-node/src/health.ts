// Active health checks in the manner of mod_proxy_hcheck: GET a path on each
// member every interval; `fall` failures in a row mark it failed (hcFail),
// `rise` successes in a row bring it back.
import * as http from "node:http";
import type { HealthCheckConfig } from "./config";
import type { Member } from "./members";

export type HealthChange = (m: Member, healthy: boolean, reason: string) => void;

/**
 * One check, answered within `cfg.timeoutMs` whatever happens: the deadline
 * covers the connect too. (A request's own setTimeout is armed only once the
 * socket is connected, so a vanished host would hold a probe for the kernel's
 * SYN retries, about two minutes, and the member would never be failed.)
 */
export function probe(m: Member, cfg: HealthCheckConfig): Promise<{ ok: boolean; reason: string }> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (ok: boolean, reason: string): void => {
      if (!settled) {
        settled = true;
        clearTimeout(deadline);
        resolve({ ok, reason });
      }
    };
    const req = http.request({
      host: m.host,
      port: m.port,
      path: cfg.path,
      method: "GET",
      agent: false,
      headers: { Host: m.authority, "User-Agent": "proxy-node-hcheck", Connection: "close" },
    });
    const deadline = setTimeout(() => {
      done(false, `no answer within ${cfg.timeoutMs} ms${req.socket?.connecting !== false ? " (not even connected)" : ""}`);
      req.destroy();
    }, cfg.timeoutMs);
    req.on("error", (e) => done(false, e.message));
    req.on("response", (res) => {
      res.resume();
      const ok = res.statusCode === cfg.expect;
      done(ok, ok ? "ok" : `status ${res.statusCode}, expected ${cfg.expect}`);
    });
    req.end();
  });
}

export class HealthChecker {
  private timer: NodeJS.Timeout | null = null;
  private inFlight = new Set<Member>();

  constructor(
    private members: () => readonly Member[],
    public cfg: HealthCheckConfig,
    private onChange: HealthChange,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.round(), this.cfg.intervalMs);
    this.timer.unref();
    this.round();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  round(): void {
    for (const m of this.members()) {
      if (this.inFlight.has(m) || m.status === "stopped") continue;
      this.inFlight.add(m);
      void probe(m, this.cfg).then((r) => {
        this.inFlight.delete(m);
        if (this.timer === null) return;
        this.record(m, r.ok, r.reason);
      });
    }
  }

  record(m: Member, ok: boolean, reason: string): void {
    if (ok) {
      m.hcBad = 0;
      m.hcOk++;
      if (m.hcFail && m.hcOk >= this.cfg.rise) {
        m.hcFail = false;
        // A member that answers its health check is reachable again.
        m.inError = false;
        this.onChange(m, true, reason);
      }
    } else {
      m.hcOk = 0;
      m.hcBad++;
      if (!m.hcFail && m.hcBad >= this.cfg.fall) {
        m.hcFail = true;
        this.onChange(m, false, reason);
      }
    }
  }
}
