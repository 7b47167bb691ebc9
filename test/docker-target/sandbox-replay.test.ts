/**
 * The docker target (sandbox stack), proven without the docker provider plugin
 * (unobtainable here, see scripts/toolchain.ts): the program runs under Pulumi's
 * mocks, the docker resources it declares are recorded, and exactly those are
 * created with the docker CLI (test/support/docker-replay.ts). Then the same
 * user-level checks as the dev path run against that cluster, and it is torn
 * down by label, also when a check failed.
 */
import * as assert from "node:assert/strict";
import { modelFromStackFile } from "../../infra/config/stack-file";
import { checkFailover, newClient } from "../cluster/checks";
import { registerUserChecks } from "../cluster/user-checks";
import { apacheManager } from "../cluster/managers";
import { recordFigure } from "../support/figures";
import { probePage, request } from "../support/http-client";
import { leftovers, onHost, RunningCluster } from "../support/local-cluster";
import {
  containerTiers,
  createContainer,
  docker,
  RecordedCluster,
  recordDockerResources,
  replay,
  REPLAY_SECRETS,
  requireDockerEngine,
  teardown,
  waitHealthy,
} from "../support/docker-replay";

const STACK = "sandbox";
const log = (s: string): void => {
  if (process.env.DRUPAL_CLUSTER_VERBOSE) console.log(`      [replay] ${s}`);
};

/** Polls the balancer until the probe app answers through it. */
async function firstGoodResponse(url: string, timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  let last = "";
  while (Date.now() - t0 < timeoutMs) {
    try {
      const r = await request(`${url}/`, { timeoutMs: 3000 });
      if (r.status === 200) {
        probePage(r);
        return;
      }
      last = `${r.status}`;
    } catch (e) {
      last = String(e);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`no good response through ${url} within ${timeoutMs / 1000} s (last: ${last})`);
}

describe("docker target, replayed from the program's recorded docker resources with the docker CLI (sandbox stack; no pulumi up: the docker provider plugin is unobtainable here)", function () {
  this.timeout(20 * 60 * 1000);
  let rec: RecordedCluster | undefined;
  let cluster: RunningCluster | undefined;
  let tornDown = false;

  before(async function () {
    requireDockerEngine();
    rec = await recordDockerResources(STACK);
    // Leftovers of a crashed run would make `docker create` fail on names and ports.
    teardown(STACK);
    const model = modelFromStackFile(STACK);
    const t0 = Date.now();
    const tiers = await replay(rec, { log });
    const balancerUrl = rec.outputs.balancerUrl;
    assert.ok(balancerUrl, "the program gives the sandbox stack no balancer URL");
    await firstGoodResponse(balancerUrl, 60000);
    const upSeconds = (Date.now() - t0) / 1000;
    recordFigure(`${STACK} (docker replay): nothing to first good response through the balancer, s`, upSeconds);
    for (const t of tiers)
      recordFigure(`${STACK} (docker replay): provisioning ${t.tier.map((n) => n.replace(`drupal-cluster-${STACK}-`, "")).join("+")}, s`, t.seconds);
    const webUrls: Record<string, string> = {};
    for (const [name, url] of Object.entries(rec.outputs.webUrls)) if (url) webUrls[name] = url;
    cluster = { model, balancerUrl, managerUrl: rec.outputs.balancerManagerUrl ?? `${balancerUrl}/balancer-manager`, webUrls, upSeconds };
  });

  after(function () {
    // Runs also when a check (or the bring-up) failed halfway
    // (DRUPAL_CLUSTER_KEEP=1 keeps the cluster for a post-mortem).
    if (process.env.DRUPAL_CLUSTER_KEEP) return;
    if (!tornDown) {
      try {
        teardown(STACK);
      } catch (e) {
        console.error(`teardown of ${STACK}: ${e}`);
      }
    }
    assert.deepEqual(leftovers(STACK), [], `stack ${STACK} left things behind`);
  });

  const get = (): RunningCluster => {
    if (!cluster) throw new Error("the replayed cluster did not come up");
    return cluster;
  };

  it("recorded what the sandbox stack file says: its network, files and database volumes and one container per host, data first and the balancer last", () => {
    const r = rec!;
    const m = get().model;
    assert.deepEqual(
      r.networks.map((n) => [n.name, n.ipamConfigs[0]?.subnet]),
      [[m.docker!.network, m.docker!.subnet]],
    );
    assert.deepEqual(r.volumes.map((v) => v.name).sort(), [`${m.docker!.network}-database`, `${m.docker!.network}-files`]);
    const data = r.containers.find((c) => c.hostname === "data");
    assert.deepEqual(data?.volumes, [{ volumeName: `${m.docker!.network}-database`, containerPath: "/var/lib/mysql" }]);
    const tiers = containerTiers(r.containers).map((t) => t.map((c) => c.hostname).sort());
    assert.deepEqual(tiers, [["data"], m.web.map((w) => w.host.name).sort(), ["balancer"]]);
    for (const c of r.containers) assert.equal(c.name, `${m.project}-${STACK}-${c.hostname}`);
    assert.equal(r.outputs.balancerUrl, "http://127.0.0.1:8180");
    assert.deepEqual(r.outputs.webUrls, { lb1: "http://127.0.0.1:8191", lb2: "http://127.0.0.1:8192" });
  });

  it("runs each container as recorded: image, command, hostname, address and aliases, ports, volumes, labels, restart policy, healthcheck", () => {
    for (const c of rec!.containers) {
      const [info] = JSON.parse(docker(["inspect", c.name])) as Array<Record<string, any>>;
      assert.equal(info.Config.Image, c.image, `${c.name}: image`);
      assert.deepEqual(info.Config.Cmd, c.command, `${c.name}: command`);
      assert.equal(info.Config.Hostname, c.hostname, `${c.name}: hostname`);
      assert.equal(info.State.Running, true, `${c.name} is not running`);
      for (const n of c.networksAdvanced) {
        const net = info.NetworkSettings.Networks[n.name];
        assert.ok(net, `${c.name} is not on network ${n.name}`);
        if (n.ipv4Address) assert.equal(net.IPAddress, n.ipv4Address, `${c.name}: address on ${n.name}`);
        for (const a of n.aliases ?? []) assert.ok((net.Aliases ?? []).includes(a), `${c.name}: alias ${a} on ${n.name}`);
      }
      const bound = Object.entries((info.HostConfig.PortBindings ?? {}) as Record<string, Array<{ HostIp: string; HostPort: string }>>)
        .flatMap(([p, bs]) => bs.map((b) => `${b.HostIp}:${b.HostPort}->${p}`))
        .sort();
      assert.deepEqual(bound, c.ports.map((p) => `${p.ip ?? ""}:${p.external ?? ""}->${p.internal}/${p.protocol ?? "tcp"}`).sort(), `${c.name}: ports`);
      const mounts = (info.Mounts as Array<{ Type: string; Name: string; Destination: string }>).filter((m) => m.Type === "volume");
      assert.deepEqual(
        mounts.map((m) => `${m.Name}:${m.Destination}`).sort(),
        c.volumes.map((v) => `${v.volumeName}:${v.containerPath}`).sort(),
        `${c.name}: volumes`,
      );
      for (const l of c.labels) assert.equal(info.Config.Labels[l.label], l.value, `${c.name}: label ${l.label}`);
      assert.equal(info.HostConfig.RestartPolicy.Name, c.restart ?? "no", `${c.name}: restart policy`);
      assert.equal(Boolean(info.Config.Healthcheck?.Test?.length), Boolean(c.healthcheck?.tests?.length), `${c.name}: healthcheck`);
      if (c.wait) assert.equal(info.State.Health?.Status, "healthy", `${c.name}: health`);
    }
    for (const n of rec!.networks) {
      const [net] = JSON.parse(docker(["network", "inspect", n.name])) as Array<Record<string, any>>;
      assert.deepEqual(
        net.IPAM.Config.map((x: { Subnet: string }) => x.Subnet),
        n.ipamConfigs.map((x) => x.subnet),
        `${n.name}: subnet`,
      );
      for (const l of n.labels) assert.equal(net.Labels[l.label], l.value, `${n.name}: label ${l.label}`);
    }
  });

  it("delivered the uploads with the program's permissions, secrets readable by their owners only", () => {
    const m = get().model;
    for (const c of rec!.containers) {
      const st = onHost(m, c.hostname, `stat -c '%n %a' ${c.uploads.map((u) => `'${u.file}'`).join(" ")}`);
      assert.equal(st.code, 0, `${c.hostname}: ${st.out}`);
      const modes = new Map(st.out.split("\n").map((l) => l.split(" ") as [string, string]));
      for (const u of c.uploads) {
        const want = parseInt(u.permissions ?? (u.executable ? "755" : "644"), 8).toString(8);
        assert.equal(modes.get(u.file), want, `${c.hostname}: mode of ${u.file}`);
      }
    }
    // The secret file on the data server: root only, and it holds the test password.
    assert.equal(onHost(m, "data", "stat -c %a /etc/drupal-cluster/bootstrap.sql").out, "600");
    assert.equal(
      onHost(m, "data", `grep -qF '${REPLAY_SECRETS.dbPassword}' /etc/drupal-cluster/bootstrap.sql`).code,
      0,
      "bootstrap.sql does not hold the recorded password",
    );
  });

  // The replay is no stack: the token is the recorded one. Breaking it on purpose is left to the dev path's suites.
  registerUserChecks(get, async () => apacheManager(get()), { managerToken: async () => REPLAY_SECRETS.managerToken, breakOnPurpose: false });
  it("fails over when the pinned web server stops, and takes it back after retry", async () => {
    const report = await checkFailover(get());
    recordFigure(`${STACK} (docker replay): failover, failed requests`, report.failed);
    recordFigure(`${STACK} (docker replay): failover, requests in the stream`, report.requests);
    recordFigure(`${STACK} (docker replay): failover, stopped server back in rotation after, s`, report.backAfterSeconds);
  });

  it("the data server's container made again (as a changed payload does) keeps the database: a session goes on", async () => {
    const c = get();
    const { browser } = await newClient(c);
    const before = probePage(await browser.get("/"));
    const data = rec!.containers.find((x) => x.hostname === "data")!;
    docker(["rm", "-f", data.name]);
    createContainer(data);
    await waitHealthy(data);
    // While the database was gone the web servers failed their health checks, and the
    // balancer's agent took them out; they come back once their checks pass again.
    const t0 = Date.now();
    let r = await browser.get("/");
    while (r.status !== 200 && Date.now() - t0 < 30000) {
      await new Promise((res) => setTimeout(res, 500));
      r = await browser.get("/");
    }
    const after = probePage(r);
    assert.equal(after.session, before.session);
    assert.equal(after.visits, before.visits + 1, "the session's visit counter was lost with the data server's container");
  });

  it("teardown by label leaves no container, network or volume", () => {
    const t0 = Date.now();
    teardown(STACK);
    tornDown = true;
    recordFigure(`${STACK} (docker replay): teardown, s`, (Date.now() - t0) / 1000);
    assert.deepEqual(leftovers(STACK), []);
  });
});
