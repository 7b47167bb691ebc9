// Runtime state of one balancer member. Admin state (status) comes from config
// or the manager; health state (inError, hcFail) from passive and active checks.
import { Pool } from "./proxy/upstream";
import type { MemberConfig, MemberStatus } from "./config";

export class Member {
  url: string;
  host: string;
  port: number;
  route: string;
  lbfactor: number;
  retryMs: number;
  status: MemberStatus;
  /** The status the config gave, which `status` differs from once an operator (the manager) changed it. */
  configuredStatus: MemberStatus;
  /** Set by a failed proxied request; cleared when `retryMs` has passed (Apache's retry). */
  inError = false;
  errorTime = 0;
  /** Set by active health checks (Apache's HC_FAIL flag). */
  hcFail = false;
  hcOk = 0;
  hcBad = 0;
  /** Apache's lbstatus accumulator, used by byrequests/bybusyness. */
  lbstatus = 0;
  busy = 0;
  requests = 0;
  errors = 0;
  bytesIn = 0;
  bytesOut = 0;
  pool: Pool;
  /** Precomputed "host:port" for Location rewriting, so the hot path only compares strings. */
  authority: string;
  /** Precomputed Set-Cookie value when proxy-node sets the sticky cookie itself. */
  cookieLine = "";
  /** The same cookie for clients on HTTPS (app.ts). */
  secureCookieLine = "";

  constructor(cfg: MemberConfig) {
    this.url = cfg.url;
    this.host = cfg.host;
    this.port = cfg.port;
    this.route = cfg.route;
    this.lbfactor = cfg.lbfactor;
    this.retryMs = cfg.retry * 1000;
    this.status = cfg.status;
    this.configuredStatus = cfg.status;
    this.authority = cfg.url.slice("http://".length);
    // Timeouts are set from the config's `timeouts` by the app.
    this.pool = new Pool(cfg.host, cfg.port, cfg.maxSockets, cfg.maxQueue, 5000, 3000, 4000, this);
  }

  /** Apache's PROXY_WORKER_IS_USABLE plus ap_proxy_retry_worker: an errored member becomes usable again after `retry`. */
  usable(now: number): boolean {
    if (this.status === "stopped" || this.status === "disabled" || this.hcFail) return false;
    if (this.inError) {
      if (now - this.errorTime < this.retryMs) return false;
      this.inError = false;
    }
    return true;
  }

  /** May take requests that carry no route for it (not draining). */
  takesNewSessions(now: number): boolean {
    return this.status !== "draining" && this.usable(now);
  }

  markError(now: number): void {
    this.inError = true;
    this.errorTime = now;
  }

  state(now: number): string {
    if (this.status === "stopped" || this.status === "disabled") return this.status;
    if (this.hcFail) return "hcfail";
    if (this.inError && now - this.errorTime < this.retryMs) return "error";
    return this.status === "enabled" ? "ok" : this.status;
  }

  destroy(): void {
    this.pool.destroy();
  }
}
