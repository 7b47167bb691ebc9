// Chooses the member for one request: stickiness first (sticky.ts), then the
// strategy among members that take new sessions. Member tables are kept
// precomputed (route map, reusable candidate arrays) so choosing allocates nothing.
import type { BalancerConfig, MemberConfig } from "./config";
import { Member } from "./members";
import { requestedRoute, parseStickyNames, StickyOptions } from "./sticky";
import { createStrategy, Strategy } from "./strategies";

export interface Choice {
  member: Member | null;
  /** The member was chosen because the request named its route. */
  sticky: boolean;
  /** The route the request asked for (undefined if none). */
  route: string | undefined;
}

export class Balancer {
  name: string;
  members: Member[] = [];
  strategy: Strategy;
  sticky: StickyOptions;
  nofailover: boolean;
  maxRetries: number;
  private byRoute = new Map<string, Member>();
  private candidates: Member[] = [];
  private usableScratch: Member[] = [];

  constructor(cfg: BalancerConfig, previous?: Balancer) {
    this.name = cfg.name;
    this.strategy = createStrategy(cfg.lbmethod);
    this.sticky = {
      names: parseStickyNames(cfg.stickysession),
      separator: cfg.stickysessionsep,
      semicolonEndsParam: cfg.scolonpathdelim,
      trustCookieOnly: cfg.trustCookieOnly,
    };
    this.nofailover = cfg.nofailover;
    this.maxRetries = cfg.maxRetries;
    const old = new Map<string, Member>();
    if (previous) for (const m of previous.members) old.set(m.url, m);
    for (const mc of cfg.members) {
      const kept = old.get(mc.url);
      const m = kept ? applyConfig(kept, mc) : new Member(mc);
      old.delete(mc.url);
      this.members.push(m);
    }
    // Members that left the config finish their in-flight requests; their idle
    // sockets are closed now and the rest when they are released.
    for (const gone of old.values()) setTimeout(() => gone.destroy(), 30_000).unref();
    this.reindex();
  }

  /** Call after a route or member list change. */
  reindex(): void {
    this.byRoute.clear();
    for (const m of this.members) this.byRoute.set(m.route, m);
  }

  member(route: string): Member | undefined {
    return this.byRoute.get(route);
  }

  /**
   * @param tried members that already failed for this request (retries), or null.
   */
  choose(url: string, cookie: string | undefined, tried: readonly Member[] | null, now: number): Choice {
    this.forceRecovery(now);
    const route = requestedRoute(url, cookie, this.sticky);
    if (route !== undefined) {
      const m = this.byRoute.get(route);
      if (m !== undefined) {
        // Draining and standby members still serve their own sticky clients.
        if ((tried === null || !tried.includes(m)) && m.usable(now)) {
          this.strategy.stickyChosen(m, this.usable(now));
          return { member: m, sticky: true, route };
        }
        if (this.nofailover) return { member: null, sticky: true, route };
      }
      // A route naming no member is treated as no route, like Apache.
    }
    return { member: this.pick(tried, now), sticky: false, route };
  }

  /**
   * Apache's forcerecovery (On by default): when every member is in error (a
   * failed request, not a failed health check nor an operator's status), all of
   * them are tried again at once instead of answering 503 until `retry` passes.
   * All web servers restarted at once (a parallel rollout) is no reason to turn
   * clients away for a minute after they are back.
   */
  private forceRecovery(now: number): void {
    for (const m of this.members) if (!m.inError || now - m.errorTime >= m.retryMs) return;
    for (const m of this.members) m.inError = false;
    this.onForcedRecovery?.();
  }

  /** Told when forceRecovery cleared every member's error (for the log). */
  onForcedRecovery: (() => void) | null = null;

  private usable(now: number): Member[] {
    const out = this.usableScratch;
    out.length = 0;
    for (const m of this.members) if (m.usable(now)) out.push(m);
    return out;
  }

  /** Non-sticky choice: normal members first; hot standbys only when none is usable. */
  pick(tried: readonly Member[] | null, now: number): Member | null {
    const c = this.candidates;
    for (let tier = 0; tier < 2; tier++) {
      c.length = 0;
      for (const m of this.members) {
        if ((m.status === "standby") !== (tier === 1)) continue;
        if (tried !== null && tried.includes(m)) continue;
        if (m.takesNewSessions(now)) c.push(m);
      }
      if (c.length > 0) return this.strategy.pick(c) ?? null;
    }
    return null;
  }

  /**
   * Starts this balancer `n` picks into its strategy's sequence. Cluster
   * workers each keep their own byrequests state, and the primary hands out
   * connections round robin: worker k starting k picks in makes new clients on
   * new connections alternate over the members as through one process (ten
   * new clients: five and five, not six and four).
   */
  stagger(n: number): void {
    const now = Date.now();
    for (let i = 0; i < n; i++) this.pick(null, now);
  }

  destroy(): void {
    for (const m of this.members) m.destroy();
  }
}

/**
 * A reload keeps an operator's status (a drain for maintenance, set through the
 * manager) as long as the config says for that member what it said before, as
 * Apache's balancer-manager flags survive a graceful restart: an unrelated
 * change must not put a server under maintenance back in rotation. A config
 * that gives the member another status wins.
 */
function applyConfig(m: Member, mc: MemberConfig): Member {
  m.route = mc.route;
  m.lbfactor = mc.lbfactor;
  m.retryMs = mc.retry * 1000;
  if (mc.status !== m.configuredStatus) m.status = mc.status;
  m.configuredStatus = mc.status;
  m.pool.maxSockets = mc.maxSockets;
  m.pool.maxQueue = mc.maxQueue;
  return m;
}
