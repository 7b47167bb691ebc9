import * as assert from "node:assert/strict";
import { request } from "../support/http-client";
import { onHost, RunningCluster } from "../support/local-cluster";
import { ManagerOps } from "./checks";

/** Apache's balancer-manager, driven as an operator's browser would: nonce and Referer. */
export function apacheManager(c: RunningCluster): ManagerOps {
  const setStatus = async (route: string, disabled: boolean): Promise<void> => {
    const page = await request(c.managerUrl);
    assert.equal(page.status, 200, `balancer-manager answered ${page.status}`);
    const nonce = /nonce=([0-9a-f-]+)/.exec(page.body)?.[1];
    assert.ok(nonce, "no nonce on the balancer-manager page");
    const member = c.model.web.find((w) => w.route === route)!;
    // Apache names a worker by its normalised URL (no default port): take it from the page.
    const worker = [...page.body.matchAll(/[?&](?:amp;)?w=([^&"]+)/g)].map((m) => m[1]).find((w) => member.memberUrl.startsWith(w));
    assert.ok(worker, `no worker for ${member.memberUrl} on the balancer-manager page`);
    const body = new URLSearchParams({ b: c.model.balancer.name, w: worker, nonce, w_status_D: disabled ? "1" : "0" }).toString();
    const r = await request(c.managerUrl, {
      method: "POST",
      body,
      headers: { "content-type": "application/x-www-form-urlencoded", referer: c.managerUrl },
    });
    assert.equal(r.status, 200, `balancer-manager refused the change: ${r.status}`);
  };
  return {
    disable: (route) => setStatus(route, true),
    enable: (route) => setStatus(route, false),
    statusFromOutside: () => {
      const url = `http://${c.model.balancer.host.clusterAddress}:${c.model.balancer.httpPort}/balancer-manager`;
      return Number(onHost(c.model, "lb1", `curl -s -o /dev/null -w '%{http_code}' ${url}`).out);
    },
  };
}

/** proxy-node's manager API: bearer token, JSON. */
export function proxyNodeManager(c: RunningCluster, token: string): ManagerOps {
  const base = c.model.balancer.managerUrl!;
  const setStatus = async (route: string, status: string): Promise<void> => {
    const r = await request(`${base}/api/members/${route}`, {
      method: "POST",
      body: JSON.stringify({ status }),
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    });
    assert.equal(r.status, 200, `proxy-node manager refused the change: ${r.status} ${r.body}`);
  };
  return {
    disable: (route) => setStatus(route, "disabled"),
    enable: (route) => setStatus(route, "enabled"),
    statusFromOutside: () => {
      const url = `http://${c.model.balancer.host.clusterAddress}:${c.model.balancer.managerPort}/`;
      return Number(onHost(c.model, "lb1", `curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer ${token}' ${url}`).out);
    },
  };
}
