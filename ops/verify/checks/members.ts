import { parseBalancerManager, workerHealthy } from "../apache-manager-page";
import { request } from "../http";
import { fail, pass, skip } from "../result";
import { Check } from "../context";
import { webServers } from "../target";
import { managers } from "./managers";

interface MemberView {
  route: string;
  state: string;
  usable: boolean;
}

interface View {
  label: string;
  members: Array<{ route: string; shown: string; healthy: boolean }>;
}

/**
 * Every member healthy as the balancer sees it: Apache's balancer-manager page
 * (engine apache: each worker "Init Ok") and proxy-node's members API (the
 * agent's health checks with engine apache, the balancer itself with
 * proxy-node: state ok and usable). Each view that this machine may read is
 * read; neither readable (allowlist, no token) is a SKIP.
 */
export const membersHealthy: Check = {
  name: "members healthy",
  async run({ target: t }) {
    const views: View[] = [];
    const unread: string[] = [];
    for (const m of managers(t)) {
      if (m.token && !t.managerToken) {
        unread.push(`${m.label}: no manager token in this stack's config`);
        continue;
      }
      const r = await request(m.page, m.token && t.managerToken ? { headers: { authorization: `Bearer ${t.managerToken.reveal()}` } } : {});
      if (r.status !== 200) {
        unread.push(`${m.label} answered ${r.status}`);
        continue;
      }
      if (m.token) {
        const members = (JSON.parse(r.body) as { members: MemberView[] }).members;
        views.push({ label: m.label, members: members.map((x) => ({ route: x.route, shown: x.state, healthy: x.state === "ok" && x.usable })) });
      } else {
        views.push({ label: m.label, members: parseBalancerManager(r.body).map((w) => ({ route: w.route, shown: w.status, healthy: workerHealthy(w) })) });
      }
    }
    if (views.length === 0) return [skip(this.name, `no view of the members readable from here (${unread.join("; ") || "no manager published"})`)];
    const expected = webServers(t).length;
    const problems: string[] = [];
    for (const v of views) {
      if (v.members.length < expected) problems.push(`${v.label} lists ${v.members.length} members, the stack has ${expected} web servers`);
      for (const x of v.members) if (!x.healthy) problems.push(`${v.label}: ${x.route} ${x.shown}`);
    }
    const seen = views.map((v) => `${v.label}: ${v.members.map((x) => `${x.route} ${x.shown}`).join(", ")}`).join("; ");
    const also = unread.length ? ` (not read: ${unread.join("; ")})` : "";
    if (problems.length) return [fail(this.name, `${problems.join("; ")}${also}`)];
    return [pass(this.name, `${seen}${also}`)];
  },
};
