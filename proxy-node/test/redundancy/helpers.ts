// Two balancers on loopback, each the other's peer, as the cluster program renders them.
import type { Logger } from "../../src/log";
import { baseConfig, startProxy, request, freePort, type MemberServer, type Reply } from "../helpers";
import type { ProxyNode } from "../../src/app";

export const TOKEN = "pair-token-123456";
export const bearer = { Authorization: `Bearer ${TOKEN}` };

/** Keeps the events a balancer logs, to see what it was told and by whom. */
export class EventLog implements Logger {
  events: Array<{ msg: string; fields: Record<string, unknown> }> = [];
  event(_level: "info" | "warn" | "error", msg: string, fields: Record<string, unknown> = {}): void {
    this.events.push({ msg, fields });
  }
  request(): void {}
  count(msg: string): number {
    return this.events.filter((e) => e.msg === msg).length;
  }
}

export interface Side {
  name: string;
  managerPort: number;
  log: EventLog;
  app: ProxyNode | null;
}

/** Config for balancer `self` whose peer `peer` has its manager on `peerPort`. */
export function pairConfig(
  self: string,
  managerPort: number,
  peers: Array<{ name: string; port: number }>,
  members: MemberServer[],
  virtualAddress = "192.0.2.10",
  extra: Record<string, unknown> = {},
) {
  return baseConfig(
    members.map((m) => ({ url: m.url, route: m.route })),
    {
      manager: { host: "127.0.0.1", port: managerPort, allow: ["127.0.0.0/8"], token: TOKEN },
      redundancy: { self, virtualAddress, peers: peers.map((p) => ({ name: p.name, managerUrl: `http://127.0.0.1:${p.port}` })) },
      ...extra,
    },
  );
}

/** Balancers "a" and "b", started one after the other (a finds no peer, b adopts a's statuses). */
export async function startPair(members: MemberServer[]): Promise<{ a: Side; b: Side; start(side: Side): Promise<ProxyNode> }> {
  const a: Side = { name: "a", managerPort: await freePort(), log: new EventLog(), app: null };
  const b: Side = { name: "b", managerPort: await freePort(), log: new EventLog(), app: null };
  const start = async (side: Side): Promise<ProxyNode> => {
    const other = side === a ? b : a;
    side.log = new EventLog();
    side.app = await startProxy(pairConfig(side.name, side.managerPort, [{ name: other.name, port: other.managerPort }], members), side.log);
    return side.app;
  };
  await start(a);
  await start(b);
  return { a, b, start };
}

export function change(managerPort: number, route: string, body: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  return request(managerPort, {
    method: "POST",
    path: `/api/members/${route}`,
    headers: { ...bearer, "Content-Type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
}

export interface MembersAnswer {
  members: Array<{ route: string; status: string; lbfactor: number; state: string }>;
  redundancy: { self: string; virtualAddress: string; holdsAddress: boolean; peers: Array<{ name: string; managerUrl: string }> } | null;
}

export async function members(managerPort: number): Promise<MembersAnswer> {
  const r = await request(managerPort, { path: "/api/members", headers: bearer });
  if (r.status !== 200) throw new Error(`GET /api/members answered ${r.status}`);
  return JSON.parse(r.body) as MembersAnswer;
}

export async function statusOf(managerPort: number, route: string): Promise<string | undefined> {
  return (await members(managerPort)).members.find((m) => m.route === route)?.status;
}
