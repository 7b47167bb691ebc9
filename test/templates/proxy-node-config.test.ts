import assert from "node:assert/strict";
import { ConfigError } from "../../infra/config/errors";
import { buildPayloads } from "../../infra/payload/index";
import { proxyNodeConfig, proxyNodeConfigJson } from "../../infra/payload/proxy-node-config";
import { HostPayload } from "../../infra/payload/types";
import { validateConfig as validateProxyNodeConfig } from "../../proxy-node/src/config";
import { ARTIFACTS, model, PROJECT, SECRETS, sshValues, dockerValues } from "../support/cluster-configs";
import { fileOf, PROXY_NODE_CONFIG } from "../support/payloads";
import { ClusterModel } from "../../infra/model/types";

function balancerOf(m: ClusterModel, secrets = SECRETS): HostPayload {
  return buildPayloads(m, secrets, ARTIFACTS).find((p) => p.host.role === "balancer") as HostPayload;
}

function configText(m: ClusterModel): string {
  return fileOf(balancerOf(m), PROXY_NODE_CONFIG).content;
}

/** Runs `render` and returns what it threw; fails if it rendered. */
function refusal(render: () => unknown): Error {
  try {
    render();
  } catch (e) {
    assert.ok(e instanceof Error, String(e));
    return e;
  }
  assert.fail("rendered without error");
}

describe("proxy-node's config.json, built as proxy-node's ConfigFile (issue 17)", () => {
  describe("apache only where proxy-node is Apache's agent", () => {
    for (const values of [sshValues({ engine: "proxy-node" }), dockerValues({ engine: "proxy-node" })]) {
      it(`engine proxy-node (${values.target}): mode serve, no apache block, so no agent is made even on reload`, () => {
        const raw = JSON.parse(configText(model(values))) as Record<string, unknown>;
        assert.equal(raw.mode, "serve");
        assert.ok(!("apache" in raw), `apache: ${JSON.stringify(raw.apache)}`);
        assert.equal(validateProxyNodeConfig(raw).apache, null);
      });
    }

    for (const values of [sshValues({ engine: "apache" }), dockerValues({ engine: "apache" })]) {
      it(`engine apache (${values.target}): mode agent, with the apache block naming Apache's balancer-manager and balancer`, () => {
        const m = model(values);
        const raw = JSON.parse(configText(m)) as { mode: string; apache: unknown };
        assert.equal(raw.mode, "agent");
        assert.deepEqual(raw.apache, { balancer: "drupal", managerUrl: `http://127.0.0.1:${m.balancer.httpPort}/balancer-manager` });
      });
    }
  });

  it("every setting the old template carried is still there, for both engines", () => {
    const serve = JSON.parse(configText(model(sshValues({ engine: "proxy-node" }))));
    assert.deepEqual(serve, {
      balancer: {
        healthCheck: { expect: 200, fall: 2, intervalMs: 2000, path: "/health.php", rise: 2, timeoutMs: 2000 },
        lbmethod: "byrequests",
        members: [
          { lbfactor: 1, retry: 10, route: "lb1", status: "enabled", url: "http://10.0.0.11:80" },
          { lbfactor: 1, retry: 10, route: "lb2", status: "enabled", url: "http://10.0.0.12:80" },
        ],
        name: "drupal",
        nofailover: false,
        setCookie: null,
        stickysession: "BALANCEID",
        stickysessionsep: ".",
        trustCookieOnly: false,
      },
      listen: { host: "0.0.0.0", port: 80 },
      log: { requests: true },
      manager: { allow: ["127.0.0.1/32", "192.168.1.0/24", "10.9.8.7"], host: "0.0.0.0", port: 8081, token: SECRETS.managerToken },
      mode: "serve",
      publicUrl: "http://cluster.example.org",
      timeouts: { connectMs: 2000, headersMs: 60000, idleMs: 60000 },
      workers: "auto",
    });
    const agent = JSON.parse(configText(model(sshValues({ engine: "apache", app: "drupal" }))));
    assert.deepEqual(
      { ...agent, balancer: undefined, manager: undefined },
      {
        apache: { balancer: "drupal", managerUrl: "http://127.0.0.1:80/balancer-manager" },
        balancer: undefined,
        listen: { host: "0.0.0.0", port: 8082 },
        // Drupal's cron URL carries its key.
        log: { requests: true, withholdPaths: ["/cron/"] },
        manager: undefined,
        mode: "agent",
        publicUrl: "http://cluster.example.org",
        timeouts: { connectMs: 2000, headersMs: 60000, idleMs: 60000 },
      },
    );
    assert.equal(agent.balancer.healthCheck.path, "/user/login");
    assert.deepEqual(agent.manager, serve.manager);
  });

  it("pretty JSON with the keys sorted at every level, the same bytes on every render", () => {
    const m = model(sshValues({ engine: "apache", webCount: 3 }));
    const text = configText(m);
    assert.equal(text, configText(m));
    assert.ok(text.endsWith("}\n") && text.startsWith('{\n  "apache": {\n'), text.slice(0, 40));
    const check = (v: unknown, at: string): void => {
      if (Array.isArray(v)) return v.forEach((x, i) => check(x, `${at}[${i}]`));
      if (v === null || typeof v !== "object") return;
      const keys = Object.keys(v);
      assert.deepEqual(keys, [...keys].sort(), `keys of ${at || "(root)"}`);
      for (const k of keys) check((v as Record<string, unknown>)[k], at ? `${at}.${k}` : k);
    };
    check(JSON.parse(text), "");
    assert.equal(text, `${JSON.stringify(JSON.parse(text), null, 2)}\n`);
  });

  it("the manager token stays a secret: only in the secret file, which only root reads, and only from the secrets given", () => {
    const f = fileOf(balancerOf(model(sshValues({ engine: "proxy-node" }))), PROXY_NODE_CONFIG);
    assert.equal(f.secret, true);
    assert.equal(f.mode, "0600");
    assert.equal(JSON.parse(f.content).manager.token, SECRETS.managerToken);
    const placeholder = fileOf(balancerOf(model(sshValues()), { ...SECRETS, managerToken: "(secret)" }), PROXY_NODE_CONFIG);
    assert.equal(
      JSON.parse(placeholder.content).manager.token,
      "(secret)",
      "the layout render (secret-payloads.ts placeholders) must pass proxy-node's validation",
    );
  });

  describe("a config proxy-node would refuse fails the render, naming the key", () => {
    it("a route forced into the model past our validation: refused as the setting web[1].route, naming balancer.members[1].route", () => {
      const m = model(sshValues({ engine: "proxy-node" }));
      m.web[1].route = "lb 2";
      const e = refusal(() => balancerOf(m));
      assert.ok(e instanceof ConfigError, `${e.name}: ${e.message}`);
      assert.equal(e.key, `${PROJECT}:web[1].route`);
      assert.match(e.message, /proxy-node would refuse it \(\/etc\/proxy-node\/config\.json on balancer, key balancer\.members\[1\]\.route\)/);
      assert.match(e.message, /expected letters, digits/);
    });

    it("balancer.connectTimeout forced to 0: the health probe's deadline, refused as balancer.connectTimeout", () => {
      const m = model(sshValues({ engine: "apache" }));
      m.balancer.connectTimeout = 0;
      const e = refusal(() => balancerOf(m));
      assert.ok(e instanceof ConfigError, `${e.name}: ${e.message}`);
      assert.equal(e.key, `${PROJECT}:balancer.connectTimeout`);
      assert.match(e.message, /key balancer\.healthCheck\.timeoutMs\): expected an integer from 10 to 600000, got 0/);
    });

    it("proxyNodeWorkers forced to 65: refused as balancer.proxyNodeWorkers, naming workers", () => {
      const m = model(sshValues({ engine: "proxy-node" }));
      m.balancer.proxyNodeWorkers = 65;
      const e = refusal(() => balancerOf(m));
      assert.ok(e instanceof ConfigError, `${e.name}: ${e.message}`);
      assert.equal(e.key, `${PROJECT}:balancer.proxyNodeWorkers`);
      assert.match(e.message, /key workers\): expected an integer from 1 to 64 or "auto", got 65/);
    });

    it("a value no setting gives (built by the payload code): a plain error naming the key in the file", () => {
      const m = model(sshValues({ engine: "apache" }));
      const built = proxyNodeConfig(m, m.balancer.host, SECRETS);
      built.config.balancer.healthCheck = { ...built.config.balancer.healthCheck, intervalMs: 5 };
      const e = refusal(() => proxyNodeConfigJson(m, m.balancer.host, built, PROXY_NODE_CONFIG));
      assert.ok(!(e instanceof ConfigError), "no setting to blame");
      assert.match(
        e.message,
        /^proxy-node would refuse the config this program built \(\/etc\/proxy-node\/config\.json on balancer, key balancer\.healthCheck\.intervalMs\): expected an integer from 100/,
      );
    });

    it("a manager token proxy-node refuses: refused as managerToken, without showing the value", () => {
      const token = "token with a space 7c1f93";
      const e = refusal(() => balancerOf(model(sshValues()), { ...SECRETS, managerToken: token }));
      assert.ok(e instanceof ConfigError, `${e.name}: ${e.message}`);
      assert.equal(e.key, `${PROJECT}:managerToken`);
      assert.match(e.message, /key manager\.token/);
      assert.ok(!e.message.includes("7c1f93"), e.message);
    });
  });
});
