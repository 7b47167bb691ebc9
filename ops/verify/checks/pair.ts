import { request } from "../http";
import { fail, pass, skip } from "../result";
import { Check } from "../context";

interface PairView {
  name: string;
  holds: boolean;
  statuses: Record<string, string>;
}

/**
 * A balancer pair (balancer.redundancy): exactly one balancer holds the virtual
 * address (none is an outage, both a split brain), and both hold the same
 * administrative status for every member, so a client is treated alike
 * whichever one serves it. Read from each balancer's proxy-node manager.
 */
export const balancerPair: Check = {
  name: "balancer pair",
  async run({ target: t }) {
    if (!t.balancers || !t.virtualAddress) return [skip(this.name, "this stack has one balancer (no balancer.redundancy)")];
    if (!t.managerToken) return [skip(this.name, "no manager token in this stack's config: the balancers' managers cannot be read")];
    const views: PairView[] = [];
    for (const [name, b] of Object.entries(t.balancers)) {
      if (!b.proxyNodeManagerUrl) return [skip(this.name, `${name}'s manager is not published for this stack`)];
      const r = await request(`${b.proxyNodeManagerUrl}/api/members`, { headers: { authorization: `Bearer ${t.managerToken.reveal()}` } });
      if (r.status !== 200) return [skip(this.name, `${name}'s manager ${b.proxyNodeManagerUrl} answered ${r.status}`)];
      const body = JSON.parse(r.body) as { members: Array<{ route: string; status: string }>; redundancy?: { holdsAddress?: boolean } };
      if (typeof body.redundancy?.holdsAddress !== "boolean") return [fail(this.name, `${name}'s manager does not say whether it holds ${t.virtualAddress}`)];
      views.push({ name, holds: body.redundancy.holdsAddress, statuses: Object.fromEntries(body.members.map((m) => [m.route, m.status])) });
    }
    const holders = views.filter((v) => v.holds).map((v) => v.name);
    if (holders.length === 0) return [fail(this.name, `no balancer holds the virtual address ${t.virtualAddress}: clients reach nothing`)];
    if (holders.length > 1)
      return [fail(this.name, `${holders.join(" and ")} both hold ${t.virtualAddress} (split brain): check that VRRP passes between them`)];
    const [a, b] = views;
    const differ = Object.keys({ ...a.statuses, ...b.statuses }).filter((route) => a.statuses[route] !== b.statuses[route]);
    if (differ.length)
      return [
        fail(
          this.name,
          `the balancers disagree on ${differ.map((r) => `${r} (${a.name}: ${a.statuses[r] ?? "absent"}, ${b.name}: ${b.statuses[r] ?? "absent"})`).join(", ")}`,
        ),
      ];
    return [pass(this.name, `${holders[0]} holds ${t.virtualAddress}; both balancers agree on ${Object.keys(a.statuses).length} members`)];
  },
};
