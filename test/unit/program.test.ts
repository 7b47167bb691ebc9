import assert from "node:assert/strict";
import * as fs from "node:fs";
import { ConfigError } from "../../infra/config/errors";
import { modelFromStackFile, readStackFile, REPO_ROOT } from "../../infra/config/stack-file";
import { ClusterModel } from "../../infra/model/types";
import { PROXY_NODE_BIN, PROXY_NODE_CODE_KEY } from "../../infra/payload/balancer";
import { buildPayloads } from "../../infra/payload/index";
import { HostPayload } from "../../infra/payload/types";
import { ARTIFACTS, dockerValues, exampleHostKey, model, sshValues, Values } from "../support/cluster-configs";
import { isWireSecret, MockRun, plainStrings, Registration, runWithMocks, TEST_STACK_SECRETS } from "../support/pulumi-mocks";

// The program is imported only after the first setMocks (see before()).
type Program = typeof import("../../infra/program");
let program: Program;

const REMOTE_FILE = "drupal-cluster:ssh:RemoteFile";
const REMOTE_COMMAND = "drupal-cluster:ssh:RemoteCommand";
const CONTAINER = "docker:index/container:Container";
const ROLE_TYPE = { data: "DataServer", web: "WebServer", balancer: "BalancerHost" } as const;
const SECRET_TEXTS = [...Object.values(TEST_STACK_SECRETS), "unit-ssh-key-6e4c"];

const stackFiles = fs
  .readdirSync(REPO_ROOT)
  .map((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1])
  .filter((s): s is string => s !== undefined)
  .sort();

/** The same stack with a second balancer (balancer.redundancy). */
function pairOf(values: Values): Values {
  const v = structuredClone(values);
  const b = v.balancer as Record<string, unknown>;
  b.redundancy =
    v.target === "docker"
      ? {}
      : {
          virtualAddress: "10.0.0.4",
          peer: { address: "10.0.0.6", ssh: { host: "203.0.113.6", user: "root", hostKey: exampleHostKey(6) }, managerUrl: "http://cluster.example.org:8083" },
        };
  return v;
}

interface Case {
  label: string;
  stack: string;
  values: Values;
  model: ClusterModel;
}

const cases: Case[] = [
  ...stackFiles.map((stack) => ({ label: `stack file Pulumi.${stack}.yaml`, stack, values: readStackFile(stack), model: modelFromStackFile(stack) })),
  // Both targets are covered even before a docker stack file exists.
  {
    label: "docker target, 3 web servers (unit config)",
    stack: "unit-docker",
    values: dockerValues({ webCount: 3 }),
    model: model(dockerValues({ webCount: 3 }), "unit-docker"),
  },
  {
    label: "docker target, a balancer pair (unit config)",
    stack: "unit-docker-pair",
    values: pairOf(dockerValues()),
    model: model(pairOf(dockerValues()), "unit-docker-pair"),
  },
  {
    label: "ssh target, a balancer pair, proxy-node (unit config)",
    stack: "unit-ssh-pair",
    values: pairOf(sshValues({ engine: "proxy-node" })),
    model: model(pairOf(sshValues({ engine: "proxy-node" })), "unit-ssh-pair"),
  },
  {
    label: "ssh target, 5 web servers, proxy-node (unit config)",
    stack: "unit-ssh",
    values: sshValues({ webCount: 5, engine: "proxy-node" }),
    model: model(sshValues({ webCount: 5, engine: "proxy-node" }), "unit-ssh"),
  },
];

function component(run: MockRun<unknown>, target: string, role: keyof typeof ROLE_TYPE, name: string): Registration {
  const found = run.registrations.filter((r) => r.type === `drupal-cluster:${target}:${ROLE_TYPE[role]}` && r.name === name);
  assert.equal(
    found.length,
    1,
    `expected one ${target} ${role} component named ${name}; registered: ${run.registrations.map((r) => `${r.type} ${r.name}`).join(", ")}`,
  );
  return found[0];
}

/** URNs of every resource below a component. */
function descendants(run: MockRun<unknown>, root: Registration): Set<string> {
  const out = new Set<string>();
  let added = true;
  while (added) {
    added = false;
    for (const r of run.registrations) {
      if (!out.has(r.urn) && (r.parent === root.urn || out.has(r.parent))) {
        out.add(r.urn);
        added = true;
      }
    }
  }
  return out;
}

describe("cluster program under pulumi mocks", function () {
  // Dynamic providers are serialized per resource type: slow the first time.
  this.timeout(120000);

  before(async () => {
    assert.ok(stackFiles.length > 0, "no Pulumi.*.yaml stack file found");
    await runWithMocks("import", {}, {}, () => undefined);
    program = await import("../../infra/program");
  });

  for (const c of cases) {
    describe(c.label, () => {
      let run: MockRun<ReturnType<Program["clusterProgram"]>>;
      let payloads: HostPayload[];
      const target = c.model.target;

      before(async () => {
        run = await runWithMocks(c.stack, c.values, TEST_STACK_SECRETS, () => program.clusterProgram(ARTIFACTS));
        if (run.error) throw run.error;
        payloads = buildPayloads(
          c.model,
          { dbPassword: "x", hashSalt: "x", cronKey: "layout-cron-key", managerToken: "layout-token", tlsPrivateKey: "x" },
          ARTIFACTS,
        );
      });

      it("declares one host component per host, of its role's type", () => {
        const components = run.registrations.filter((r) => r.type.startsWith(`drupal-cluster:${target}:`) && !r.type.includes(":Remote"));
        const expected = payloads.map((p) => `drupal-cluster:${target}:${ROLE_TYPE[p.host.role]} ${p.host.name}`).sort();
        assert.deepEqual(components.map((r) => `${r.type} ${r.name}`).sort(), expected);
        assert.equal(components.filter((r) => r.type.endsWith(":WebServer")).length, c.model.web.length);
      });

      it("delivers every file of every host's payload", () => {
        for (const p of payloads) {
          const comp = component(run, target, p.host.role, p.host.name);
          const below = descendants(run, comp);
          let delivered: string[];
          if (target === "ssh") {
            delivered = run.registrations.filter((r) => r.type === REMOTE_FILE && below.has(r.urn)).map((r) => r.inputs.path as string);
          } else {
            const container = run.registrations.find((r) => r.type === CONTAINER && below.has(r.urn));
            assert.ok(container, `no container for ${p.host.name}`);
            delivered = (container.inputs.uploads as Array<{ file: string }>).map((u) => u.file);
          }
          for (const f of p.files) assert.ok(delivered.includes(f.path), `${p.host.name}: ${f.path} is not delivered`);
        }
      });

      it("web servers wait for the data server, the balancer for every web server", () => {
        const data = component(run, target, "data", "data");
        const dataUrns = new Set([data.urn, ...descendants(run, data)]);
        const webs = c.model.web.map((w) => component(run, target, "web", w.host.name));
        const dependsOn = (r: Registration): string[] => {
          // docker: the container carries the dependencies; ssh: the host component.
          if (target === "docker") return run.registrations.find((x) => x.type === CONTAINER && x.parent === r.urn)!.dependencies;
          return r.dependencies;
        };
        for (const w of webs) {
          const deps = dependsOn(w);
          assert.ok(
            deps.some((u) => dataUrns.has(u)),
            `${w.name} does not wait for the data server: ${deps.join(", ")}`,
          );
        }
        const balancerDeps = dependsOn(component(run, target, "balancer", "balancer"));
        for (const w of webs) {
          const webUrns = new Set([w.urn, ...descendants(run, w)]);
          assert.ok(
            balancerDeps.some((u) => webUrns.has(u)),
            `the balancer does not wait for ${w.name}: ${balancerDeps.join(", ")}`,
          );
        }
        const pair = c.model.balancer.redundancy;
        if (pair) {
          // Never both at once: changed together, both could restart keepalived and leave the address on neither.
          const first = component(run, target, "balancer", "balancer");
          const firstUrns = new Set([first.urn, ...descendants(run, first)]);
          const peerDeps = dependsOn(component(run, target, "balancer", pair.peer.name));
          assert.ok(
            peerDeps.some((u) => firstUrns.has(u)),
            `${pair.peer.name} does not wait for the first balancer: ${peerDeps.join(", ")}`,
          );
        }
      });

      if (target === "ssh") {
        it("ssh: the balancer waits for each web server's service, and in a rolling update for its health gate and return to rotation after it", () => {
          const balancerDeps = component(run, target, "balancer", "balancer").dependencies;
          const named = (name: string): Registration | undefined => run.registrations.find((r) => r.type === REMOTE_COMMAND && r.name === name);
          for (const w of c.model.web) {
            const svc = named(`${w.host.name}-service-apache2`);
            assert.ok(svc, `no apache2 service step on ${w.host.name}`);
            if (c.model.rollout.mode === "parallel") {
              assert.ok(balancerDeps.includes(svc.urn), `balancer does not wait for ${svc.name}`);
              continue;
            }
            const gate = named(`${w.host.name}-rollout-gate`);
            const enable = named(`${w.host.name}-rollout-enable`);
            assert.ok(gate && enable, `no health gate or enable step for ${w.host.name}`);
            assert.ok(gate.dependencies.includes(svc.urn), `${w.host.name}'s health gate does not wait for its service`);
            assert.ok(enable.dependencies.includes(gate.urn), `${w.host.name} is put back before its health gate`);
            assert.ok(balancerDeps.includes(enable.urn), `balancer does not wait for ${enable.name}`);
          }
          const dbStep = run.registrations.find((r) => r.type === REMOTE_COMMAND && r.name === "data-database-and-grants");
          assert.ok(dbStep, "no database-and-grants step on data");
          for (const w of c.model.web) {
            assert.ok(
              component(run, target, "web", w.host.name).dependencies.includes(dbStep.urn),
              `${w.host.name} starts before the database and grants exist`,
            );
          }
        });

        it("ssh: files and commands connect to each host's configured endpoint; a web server's drain and return to rotation to the (first) balancer's", () => {
          const onBalancer = /-rollout-(drain|enable)$/;
          for (const p of payloads) {
            const below = descendants(run, component(run, target, p.host.role, p.host.name));
            const mine = run.registrations.filter((r) => below.has(r.urn) && r.custom);
            assert.ok(mine.length > 0);
            for (const r of mine) {
              const conn = r.wire.connection as Record<string, unknown>;
              const where = onBalancer.test(r.name) ? c.model.balancer.host.ssh! : p.host.ssh!;
              assert.deepEqual([conn.host, conn.port], [where.host, where.port], r.name);
              assert.ok(isWireSecret(conn.privateKey), `${p.host.name}: the ssh private key is not a secret input`);
            }
          }
        });

        it("ssh: rolling, one web server at a time: each is drained only once the one before is back in rotation", () => {
          if (c.model.rollout.mode !== "rolling") return;
          const urn = (name: string): string => run.registrations.find((r) => r.type === REMOTE_COMMAND && r.name === name)!.urn;
          c.model.web.forEach((w, i) => {
            const comp = component(run, target, "web", w.host.name);
            const before = c.model.web.slice(0, i).map((x) => urn(`${x.host.name}-rollout-enable`));
            if (i > 0) assert.ok(comp.dependencies.includes(before[i - 1]), `${w.host.name} does not wait for ${c.model.web[i - 1].host.name} to be back`);
            const install = run.registrations.find((r) => r.type === REMOTE_COMMAND && r.name === `${w.host.name}-install`)!;
            assert.ok(install.dependencies.includes(urn(`${w.host.name}-rollout-drain`)), `${w.host.name} is changed before it is drained`);
          });
        });
      }

      if (target === "docker") {
        it("docker: only the balancer (and direct web ports) publish, bound to 127.0.0.1 unless the stack says otherwise", () => {
          const bind = c.model.docker!.bindAddress;
          const explicit = (c.values.docker as Record<string, unknown> | undefined)?.bindAddress;
          if (explicit === undefined) assert.equal(bind, "127.0.0.1", "the default bind address must be loopback");
          const containers = run.registrations.filter((r) => r.type === CONTAINER);
          const pair = c.model.balancer.redundancy;
          // A pair adds the front: the forwarder that stands for the clients' network.
          assert.equal(containers.length, payloads.length + (pair ? 1 : 0));
          for (const ctr of containers) {
            const ports = (ctr.inputs.ports ?? []) as Array<{ internal: number; external: number; ip?: string }>;
            for (const port of ports) assert.equal(port.ip, bind, `${ctr.name} publishes ${port.external} on ${port.ip ?? "all addresses"}`);
            if (ctr.name === "data") assert.deepEqual(ports, [], "the data server must not publish ports");
          }
          const published = (name: string): number[][] =>
            (containers.find((r) => r.name === name)!.inputs.ports as Array<{ internal: number; external: number }>)
              .map((p) => [p.internal, p.external])
              .sort();
          const d = c.model.docker!;
          if (!pair) {
            assert.deepEqual(
              published("balancer"),
              [
                [c.model.balancer.httpPort, d.httpPort],
                [c.model.balancer.managerPort, d.managerPort],
              ].sort(),
            );
            return;
          }
          // Clients go through the front to the virtual address; each balancer publishes its own manager.
          assert.deepEqual(published("front"), [[c.model.balancer.httpPort, d.httpPort]]);
          assert.deepEqual(published("balancer"), [[c.model.balancer.managerPort, d.managerPort]]);
          assert.deepEqual(published(pair.peer.name), [[c.model.balancer.managerPort, d.peerManagerPort]]);
          for (const name of ["balancer", pair.peer.name]) {
            const caps = containers.find((r) => r.name === name)!.inputs.capabilities as { adds?: string[] } | undefined;
            assert.deepEqual(caps?.adds, ["NET_ADMIN"], `${name} cannot move the virtual address without NET_ADMIN`);
          }
          const front = containers.find((r) => r.name === "front")!;
          assert.match(
            String((front.inputs.command as string[]).join(" ")),
            new RegExp(`TCP:${pair.virtualAddress.replace(/\./g, "\\.")}:${c.model.balancer.httpPort},`),
          );
        });

        it("docker: files land with their payload mode and owner (the database password is not world-readable)", () => {
          const wrong: string[] = [];
          const knownIds: Record<string, string> = { root: "0", "www-data": "33" };
          for (const p of payloads) {
            const ctr = run.registrations.find((r) => r.type === CONTAINER && r.name === p.host.name)!;
            const uploads = ctr.inputs.uploads as Array<{
              file: string;
              content?: string;
              permissions?: string;
              owner?: string;
              group?: string;
              executable?: boolean;
            }>;
            const provision = uploads.find((u) => u.file === "/usr/local/sbin/drupal-cluster-provision")?.content ?? "";
            for (const f of p.files) {
              const u = uploads.find((x) => x.file === f.path)!;
              const [owner, group] = f.owner.split(":");
              // Without permissions the docker provider uploads 0644, or 0744 with executable.
              const landed = u.permissions ?? (u.executable ? "0744" : "0644");
              const modeOk = Number.parseInt(landed, 8) === Number.parseInt(f.mode, 8) || provision.includes(`chmod ${f.mode} ${f.path}`);
              const is = (got: string | undefined, want: string): boolean => (got ?? "root") === want || (got ?? "0") === knownIds[want];
              const ownerOk = (is(u.owner, owner) && is(u.group, group)) || provision.includes(`chown ${f.owner} ${f.path}`);
              if (!modeOk) wrong.push(`${p.host.name}:${f.path} wants mode ${f.mode}, lands ${landed}`);
              if (!ownerOk) wrong.push(`${p.host.name}:${f.path} wants owner ${f.owner}, lands ${u.owner ?? "root"}:${u.group ?? "root"}`);
            }
          }
          assert.deepEqual(wrong, []);
        });

        it("docker: containers, network and volume carry the stack label; fixed addresses on the private network", () => {
          const labelled = run.registrations.filter((r) => r.type.startsWith("docker:"));
          assert.ok(labelled.length >= payloads.length + 2);
          for (const r of labelled) {
            const labels = (r.inputs.labels ?? []) as Array<{ label: string; value: string }>;
            assert.ok(
              labels.some((l) => l.label === "drupal-cluster.stack" && l.value === c.stack),
              `${r.type} ${r.name} lacks label drupal-cluster.stack=${c.stack}`,
            );
          }
          for (const p of payloads) {
            const ctr = run.registrations.find((r) => r.type === CONTAINER && r.name === p.host.name)!;
            assert.equal(ctr.inputs.hostname, p.host.name);
            assert.equal(ctr.inputs.networksAdvanced[0].ipv4Address, p.host.clusterAddress);
          }
        });
      }

      it("files holding secrets are delivered as secret inputs", () => {
        let secretFiles = 0;
        for (const p of payloads) {
          const below = descendants(run, component(run, target, p.host.role, p.host.name));
          for (const f of p.files.filter((x) => x.secret)) {
            secretFiles++;
            let wire: unknown;
            if (target === "ssh") {
              wire = run.registrations.find((r) => r.type === REMOTE_FILE && below.has(r.urn) && r.inputs.path === f.path)?.wire.content;
            } else {
              const ctr = run.registrations.find((r) => r.type === CONTAINER && below.has(r.urn))!;
              const uploads = ctr.wire.uploads as Array<Record<string, unknown>>;
              wire = uploads.find((u) => u.file === f.path)?.content;
            }
            assert.ok(isWireSecret(wire), `${p.host.name}:${f.path} is delivered in plaintext`);
          }
        }
        assert.ok(secretFiles >= 1 + c.model.web.length, "the database password must reach data and every web server");
      });

      it("no test secret appears in plaintext in any resource input or stack output", () => {
        const leaks: string[] = [];
        for (const r of run.registrations) {
          for (const [at, s] of plainStrings(r.wire)) {
            for (const secret of SECRET_TEXTS) if (s.includes(secret)) leaks.push(`${r.type} ${r.name} ${at}`);
          }
        }
        const outputs = JSON.stringify(run.result);
        for (const secret of SECRET_TEXTS) if (outputs.includes(secret)) leaks.push(`stack outputs contain ${secret}`);
        assert.deepEqual(leaks, []);
      });

      it("stack outputs: the balancer, its manager, each web server and the data address", () => {
        const out = run.result!;
        assert.equal(out.target, target);
        assert.equal(out.balancerUrl, c.model.balancer.publicUrl);
        const pair = c.model.balancer.redundancy;
        if (pair) {
          assert.equal(out.virtualAddress, pair.virtualAddress);
          assert.deepEqual(Object.keys(out.balancers ?? {}), ["balancer", pair.peer.name]);
          assert.equal(out.balancers?.[pair.peer.name].proxyNodeManagerUrl, pair.peerManagerUrl);
          assert.equal(out.balancers?.[pair.peer.name].address, pair.peer.clusterAddress);
          return;
        }
        assert.deepEqual(Object.keys(out.webUrls).sort(), c.model.web.map((w) => w.host.name).sort());
        assert.equal(out.dataAddress, `${c.model.data.host.clusterAddress}:${c.model.data.port}`);
        if (c.model.balancer.engine === "apache" && out.balancerUrl) assert.equal(out.balancerManagerUrl, `${out.balancerUrl}/balancer-manager`);
      });

      if (c.model.localHosts || c.model.docker) {
        it("local clusters publish on loopback only", () => {
          const urls = [c.model.balancer.host.url, c.model.balancer.managerUrl, ...c.model.web.map((w) => w.host.url)].filter((u): u is string => !!u);
          assert.ok(urls.length > 0);
          for (const u of urls) assert.equal(new URL(u).hostname, "127.0.0.1", u);
          for (const h of [c.model.balancer.host, c.model.data.host, ...c.model.web.map((w) => w.host)]) {
            if (h.ssh) assert.equal(h.ssh.host, "127.0.0.1", `${h.name} ssh`);
          }
        });
      }
    });
  }

  describe("diffs follow the payload", () => {
    const key = (r: Registration): string => `${r.type} ${r.name}`;
    const wireOf = (r: Registration): string => JSON.stringify({ ...r.wire, __provider: undefined });
    const changed = (a: MockRun<unknown>, b: MockRun<unknown>): string[] => {
      const before = new Map(a.registrations.map((r) => [key(r), wireOf(r)]));
      const out: string[] = [];
      for (const r of b.registrations) if (before.get(key(r)) !== wireOf(r)) out.push(r.name);
      for (const k of before.keys()) if (!b.registrations.some((r) => key(r) === k)) out.push(`removed ${k}`);
      return out.sort();
    };

    it("the same config twice gives identical resource inputs (no changes)", async () => {
      const a = await runWithMocks("unit-diff", sshValues(), TEST_STACK_SECRETS, () => program.clusterProgram(ARTIFACTS));
      const b = await runWithMocks("unit-diff", sshValues(), TEST_STACK_SECRETS, () => program.clusterProgram(ARTIFACTS));
      assert.ok(a.registrations.length > 10);
      assert.deepEqual(changed(a, b), []);
    });

    it("a balancer-only change (retry) touches only the balancer's files and services", async () => {
      const values = sshValues();
      const a = await runWithMocks("unit-diff", values, TEST_STACK_SECRETS, () => program.clusterProgram(ARTIFACTS));
      const v2 = structuredClone(values) as any;
      v2.balancer.retry = 30;
      const b = await runWithMocks("unit-diff", v2, TEST_STACK_SECRETS, () => program.clusterProgram(ARTIFACTS));
      assert.deepEqual(changed(a, b), [
        "balancer-service-apache2",
        "balancer-service-proxy-node",
        "balancer:/etc/apache2/sites-available/drupal-cluster-balancer.conf",
        "balancer:/etc/proxy-node/config.json",
      ]);
    });

    for (const engine of ["apache", "proxy-node"] as const) {
      it(`engine ${engine}: a new proxy-node build rewrites its one file and its code key, and restarts proxy-node, nothing else`, async () => {
        const values = sshValues({ engine });
        const a = await runWithMocks("unit-diff", values, TEST_STACK_SECRETS, () => program.clusterProgram(ARTIFACTS));
        const b = await runWithMocks("unit-diff", values, TEST_STACK_SECRETS, () => program.clusterProgram(`${ARTIFACTS}// another build\n`));
        assert.deepEqual(changed(a, b), ["balancer-service-proxy-node", `balancer:${PROXY_NODE_CODE_KEY}`, `balancer:${PROXY_NODE_BIN}`]);
      });
    }

    it("a new secret value rewrites the files holding it and reloads their services, nothing else", async () => {
      const a = await runWithMocks("unit-diff", sshValues(), TEST_STACK_SECRETS, () => program.clusterProgram(ARTIFACTS));
      const b = await runWithMocks("unit-diff", sshValues(), { ...TEST_STACK_SECRETS, managerToken: "rotated-token" }, () => program.clusterProgram(ARTIFACTS));
      assert.deepEqual(changed(a, b), ["balancer-service-proxy-node", "balancer:/etc/proxy-node/config.json"]);
    });
  });

  describe("rollout: the order the web servers are changed in", () => {
    const webDeps = (run: MockRun<unknown>, name: string): string[] =>
      run.registrations.find((r) => r.type === "drupal-cluster:ssh:WebServer" && r.name === name)!.dependencies;
    const enableOf = (run: MockRun<unknown>, name: string): string | undefined =>
      run.registrations.find((r) => r.type === REMOTE_COMMAND && r.name === `${name}-rollout-enable`)?.urn;

    it("parallel: no drain, gate or enable step, and no web server waits for another", async () => {
      const run = await runWithMocks("unit-parallel", { ...sshValues({ webCount: 3 }), rollout: { mode: "parallel" } }, TEST_STACK_SECRETS, () =>
        program.clusterProgram(ARTIFACTS),
      );
      if (run.error) throw run.error;
      assert.deepEqual(
        run.registrations.filter((r) => r.name.includes("-rollout-")),
        [],
      );
      const webUrns = new Set(run.registrations.filter((r) => /^lb\d/.test(r.name)).map((r) => r.urn));
      for (const n of ["lb1", "lb2", "lb3"])
        assert.deepEqual(
          webDeps(run, n).filter((u) => webUrns.has(u)),
          [],
          `${n} waits for another web server`,
        );
    });

    it("rolling, batch 2 of 5: lb1 and lb2 together, lb3 and lb4 once both are back, lb5 once lb3 and lb4 are", async () => {
      const run = await runWithMocks("unit-batch", { ...sshValues({ webCount: 5 }), rollout: { batch: 2 } }, TEST_STACK_SECRETS, () =>
        program.clusterProgram(ARTIFACTS),
      );
      if (run.error) throw run.error;
      const waitsFor = (n: string): string[] =>
        ["lb1", "lb2", "lb3", "lb4", "lb5"].filter((m) => {
          const e = enableOf(run, m);
          return e !== undefined && webDeps(run, n).includes(e);
        });
      assert.deepEqual(
        ["lb1", "lb2", "lb3", "lb4", "lb5"].map((n) => [n, waitsFor(n)]),
        [
          ["lb1", []],
          ["lb2", []],
          ["lb3", ["lb1", "lb2"]],
          ["lb4", ["lb1", "lb2"]],
          ["lb5", ["lb3", "lb4"]],
        ],
      );
    });

    it("a web server's drain is triggered by any change of its payload, and by nothing on the balancer alone", async () => {
      const trig = (run: MockRun<unknown>, n: string): string => JSON.stringify(run.registrations.find((r) => r.name === `${n}-rollout-drain`)!.wire.triggers);
      const a = await runWithMocks("unit-trig", sshValues(), TEST_STACK_SECRETS, () => program.clusterProgram(ARTIFACTS));
      const v = structuredClone(sshValues()) as any;
      v.balancer.retry = 30;
      const b = await runWithMocks("unit-trig", v, TEST_STACK_SECRETS, () => program.clusterProgram(ARTIFACTS));
      v.balancer.logLevel = "info";
      const c = await runWithMocks("unit-trig", v, TEST_STACK_SECRETS, () => program.clusterProgram(ARTIFACTS));
      const d = await runWithMocks("unit-trig", v, { ...TEST_STACK_SECRETS, dbPassword: "another-db-password" }, () => program.clusterProgram(ARTIFACTS));
      assert.equal(trig(a, "lb1"), trig(b, "lb1"), "a balancer-only change drains lb1");
      assert.notEqual(trig(b, "lb1"), trig(c, "lb1"), "a change of lb1's vhost does not drain it");
      assert.notEqual(trig(c, "lb2"), trig(d, "lb2"), "a new database password (in lb2's config.php) does not drain it");
    });
  });

  describe("config errors stop the program before any resource", () => {
    it('lbmethod "roundrobin": ConfigError naming balancer.lbmethod, nothing registered', async () => {
      const values = structuredClone(sshValues()) as any;
      values.balancer.lbmethod = "roundrobin";
      const run = await runWithMocks("unit-bad", values, TEST_STACK_SECRETS, () => program.clusterProgram(ARTIFACTS));
      assert.ok(run.error instanceof ConfigError, `expected a ConfigError, got ${String(run.error)}`);
      assert.match(run.error.message, /drupal-cluster:balancer\.lbmethod/);
      assert.equal(run.registrations.length, 0, run.registrations.map((r) => r.name).join(", "));
    });

    for (const missing of ["dbPassword", "sshPrivateKey"] as const) {
      it(`a missing secret ${missing}: ConfigError naming it, nothing registered`, async () => {
        const secrets: Partial<typeof TEST_STACK_SECRETS> = { ...TEST_STACK_SECRETS };
        delete secrets[missing];
        const run = await runWithMocks("unit-bad", sshValues(), secrets, () => program.clusterProgram(ARTIFACTS));
        assert.ok(run.error instanceof ConfigError, `expected a ConfigError, got ${String(run.error)}`);
        assert.match(run.error.message, new RegExp(`drupal-cluster:${missing}.*npm run pulumi -- config set --stack unit-bad --secret ${missing}`));
        assert.equal(run.registrations.length, 0);
      });
    }

    it("a docker stack does not need sshPrivateKey", async () => {
      const secrets: Partial<typeof TEST_STACK_SECRETS> = { ...TEST_STACK_SECRETS };
      delete secrets.sshPrivateKey;
      const run = await runWithMocks("unit-docker2", dockerValues(), secrets, () => program.clusterProgram(ARTIFACTS));
      assert.equal(run.error, undefined, String(run.error));
      assert.ok(run.registrations.length > 0);
    });
  });
});
