// Two balancers behind one virtual address (issue 12): a member change made on
// one balancer's manager is carried to the other's, so whichever holds the
// address routes the same way. Peers talk through the manager API they already
// have (same token, each in the other's allow list): no second protocol, and a
// carried change is logged and applied exactly like an operator's.
import * as http from "node:http";
import type { MemberStatus, RedundancyConfig } from "./config";
import type { Member } from "./members";
import type { Logger } from "./log";
import { holdsAddress } from "./address";

/**
 * Marks a change as carried from a peer (value: the sender's `self`). The
 * receiver applies it and does not carry it on: with two balancers, that is
 * all it takes to never loop. It grants nothing: token and allow list still apply.
 */
export const PEER_HEADER = "x-proxy-node-peer";

/** Every request to a peer ends within this, connect included: a dead peer must not hold an operator's answer. */
export const PEER_TIMEOUT_MS = 2000;

/** Whether one peer took the change: shown to the operator, who must know the other balancer did not get it. */
export interface PeerResult {
  name: string;
  ok: boolean;
  /** Why not, when not ok: the peer's refusal or what the connection did. */
  error?: string;
}

/** The administrative part of a peer's member, as its GET /api/members shows it. */
export interface PeerMember {
  route: string;
  status: MemberStatus;
  lbfactor: number;
}

/** `redundancy` in GET /api/members. */
export interface RedundancyView {
  self: string;
  virtualAddress: string;
  /** Read from this host's interfaces at each call. */
  holdsAddress: boolean;
  peers: Array<{ name: string; managerUrl: string }>;
}

export function redundancyView(r: RedundancyConfig): RedundancyView {
  return {
    self: r.self,
    virtualAddress: r.virtualAddress,
    holdsAddress: holdsAddress(r.virtualAddress),
    peers: r.peers.map((p) => ({ name: p.name, managerUrl: p.managerUrl })),
  };
}

const STATUSES: readonly string[] = ["enabled", "disabled", "draining", "standby", "stopped"];

function peerRequest(url: string, method: "GET" | "POST", headers: Record<string, string>, body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (err: Error | null, v?: { status: number; text: string }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      if (err) reject(err);
      else resolve(v as { status: number; text: string });
    };
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => finish(null, { status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", (e) => finish(e));
    });
    // One deadline for connect and answer (a request's own timeout starts only once connected).
    const deadline = setTimeout(() => {
      finish(new Error(`no answer within ${PEER_TIMEOUT_MS} ms`));
      req.destroy();
    }, PEER_TIMEOUT_MS);
    req.on("error", (e) => finish(e));
    req.end(body);
  });
}

function errorText(status: number, text: string): string {
  try {
    const j = JSON.parse(text) as { error?: unknown };
    if (typeof j.error === "string") return `answered ${status}: ${j.error}`;
  } catch {
    // not JSON: the status says enough
  }
  return `answered ${status}`;
}

export class Peers {
  constructor(
    private cfg: () => RedundancyConfig | null,
    private token: () => string,
    private logger: Logger,
  ) {}

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { Authorization: `Bearer ${this.token()}`, [PEER_HEADER]: this.cfg()?.self ?? "", Accept: "application/json", ...extra };
  }

  /** Sends one member change, as applied here, to every peer at once; `route` is the member's route before the change. */
  async forward(route: string, change: Readonly<Record<string, unknown>>): Promise<PeerResult[]> {
    const r = this.cfg();
    if (!r) return [];
    const body = JSON.stringify(change);
    return Promise.all(
      r.peers.map(async (p): Promise<PeerResult> => {
        try {
          const res = await peerRequest(
            `${p.managerUrl}/api/members/${encodeURIComponent(route)}`,
            "POST",
            this.headers({ "Content-Type": "application/json", "Content-Length": String(Buffer.byteLength(body)) }),
            body,
          );
          if (res.status === 200) return { name: p.name, ok: true };
          const error = errorText(res.status, res.text);
          this.logger.event("warn", "peer refused a member change", { peer: p.name, route, change, error });
          return { name: p.name, ok: false, error };
        } catch (e) {
          const error = (e as Error).message;
          this.logger.event("warn", "member change not carried to peer", { peer: p.name, route, change, error });
          return { name: p.name, ok: false, error };
        }
      }),
    );
  }

  /** The first peer's members that answers, in config order; null when none does. */
  async fetchMembers(): Promise<{ peer: string; members: PeerMember[] } | null> {
    for (const p of this.cfg()?.peers ?? []) {
      try {
        const res = await peerRequest(`${p.managerUrl}/api/members`, "GET", this.headers());
        if (res.status !== 200) throw new Error(errorText(res.status, res.text));
        const j = JSON.parse(res.text) as { members?: unknown };
        if (!Array.isArray(j.members)) throw new Error("answer has no members list");
        const members: PeerMember[] = [];
        for (const m of j.members as unknown[]) {
          const o = m as Record<string, unknown>;
          if (typeof o?.route === "string" && typeof o.status === "string" && STATUSES.includes(o.status) && typeof o.lbfactor === "number") {
            members.push({ route: o.route, status: o.status as MemberStatus, lbfactor: o.lbfactor });
          }
        }
        return { peer: p.name, members };
      } catch (e) {
        this.logger.event("warn", "peer did not give its member statuses", { peer: p.name, error: (e as Error).message });
      }
    }
    return null;
  }
}

/**
 * Takes a peer's status and lbfactor for members with the same route (routes
 * come from the one model, so they name the same web server on both
 * balancers). Returns the members that changed.
 */
export function adopt(members: readonly Member[], from: readonly PeerMember[]): Member[] {
  const byRoute = new Map(from.map((p) => [p.route, p]));
  const changed: Member[] = [];
  for (const m of members) {
    const p = byRoute.get(m.route);
    if (!p || (p.status === m.status && p.lbfactor === m.lbfactor)) continue;
    m.status = p.status;
    if (Number.isInteger(p.lbfactor) && p.lbfactor >= 1 && p.lbfactor <= 100) m.lbfactor = p.lbfactor;
    changed.push(m);
  }
  return changed;
}
