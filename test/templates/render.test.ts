import assert from "node:assert/strict";
import { buildPayloads } from "../../infra/payload/index";
import { render, TemplateError } from "../../infra/payload/render";
import { HostPayload } from "../../infra/payload/types";
import { validateConfig as validateProxyNodeConfig } from "../../proxy-node/src/config";
import { ARTIFACTS, model, OTHER_SECRETS, renderCases, SECRETS, sshValues, Values } from "../support/cluster-configs";
import { BALANCER_VHOST, directives, fileOf, host, PROXY_CONF, PROXY_NODE_CONFIG, WEB_VHOST } from "../support/payloads";

const MANAGER_ALLOW = ["192.168.1.0/24", "10.9.8.7"];

interface ProxyNodeConfig {
  mode: string;
  workers?: unknown;
  manager: { allow: string[]; token: string };
  balancer: {
    name: string;
    lbmethod: string;
    stickysession: string;
    stickysessionsep: string;
    members: Array<{ url: string; route: string; retry: number }>;
  };
}

describe("rendered payloads", () => {
  for (const c of renderCases()) {
    describe(c.label, () => {
      const m = model(c.values);
      const payloads = buildPayloads(m, SECRETS, ARTIFACTS);
      const balancer = host(payloads, "balancer");
      const cookie = c.stickysession.split("|")[0];
      const webNames = Array.from({ length: c.webCount }, (_, i) => `lb${i + 1}`);

      it("has one payload per host, data first and balancer last", () => {
        assert.deepEqual(
          payloads.map((p) => p.host.name),
          ["data", ...webNames, "balancer"],
        );
      });

      if (c.engine === "apache") {
        it("balancer vhost: one BalancerMember per web server with its route and the stack's retry", () => {
          const members = directives(fileOf(balancer, BALANCER_VHOST).content).filter((l) => l.startsWith("BalancerMember"));
          assert.equal(members.length, c.webCount, members.join("\n"));
          webNames.forEach((name, i) => {
            const line = members[i];
            assert.ok(line.startsWith(`BalancerMember "http://10.0.0.${11 + i}:80" route=${name} retry=10`), line);
          });
        });

        it("balancer vhost: ProxyPass to the balancer with lbmethod and stickysession; the manager is not proxied", () => {
          const lines = directives(fileOf(balancer, BALANCER_VHOST).content);
          const proxyPass = lines.filter((l) => l.startsWith("ProxyPass "));
          assert.deepEqual(proxyPass, [
            "ProxyPass /balancer-manager !",
            `ProxyPass / "balancer://drupal/" lbmethod=byrequests stickysession=${c.stickysession}`,
          ]);
          assert.ok(lines.includes('<Proxy "balancer://drupal">'), "no <Proxy balancer://drupal> section");
          const reverse = lines.filter((l) => l.startsWith("ProxyPassReverse"));
          assert.deepEqual(
            reverse,
            webNames.map((_, i) => `ProxyPassReverse / "http://10.0.0.${11 + i}:80/"`),
          );
          assert.ok(lines.includes("LogLevel debug"));
        });

        it("balancer: ProxyRequests Off and ProxyVia On (never an open forward proxy)", () => {
          const all = balancer.files.filter((f) => f.path.startsWith("/etc/apache2/")).flatMap((f) => directives(f.content));
          assert.ok(all.includes("ProxyRequests Off"), "ProxyRequests Off missing");
          assert.ok(!all.some((l) => /^ProxyRequests\s+On/i.test(l)), "ProxyRequests On found");
          assert.ok(directives(fileOf(balancer, PROXY_CONF).content).includes("ProxyVia On"));
        });

        it("balancer-manager: SetHandler, open only to loopback and the configured networks with Require ip", () => {
          const text = fileOf(balancer, BALANCER_VHOST).content;
          const lines = directives(text);
          const start = lines.indexOf('<Location "/balancer-manager">');
          assert.ok(start >= 0, "no /balancer-manager location");
          const block = lines.slice(start, lines.indexOf("</Location>", start));
          assert.ok(block.includes("SetHandler balancer-manager"), block.join("\n"));
          const requires = block.filter((l) => l.startsWith("Require"));
          assert.equal(requires.length, 1, requires.join("\n"));
          const allowed = requires[0].split(/\s+/).slice(2);
          assert.equal(requires[0].split(/\s+/)[1], "ip");
          for (const net of MANAGER_ALLOW) assert.ok(allowed.includes(net), `${net} missing in ${requires[0]}`);
          assert.ok(!allowed.includes("all"));
          for (const f of balancer.files) {
            assert.doesNotMatch(f.content, /^\s*(Order|Allow from|Deny from)\b/im, `Apache 2.2 access syntax in ${f.path}`);
          }
        });

        it("the proxy-node agent config names the same members, routes and stickysession as the Apache vhost", () => {
          const cfg = JSON.parse(fileOf(balancer, PROXY_NODE_CONFIG).content) as ProxyNodeConfig;
          assert.equal(cfg.mode, "agent");
          const vhostMembers = directives(fileOf(balancer, BALANCER_VHOST).content)
            .filter((l) => l.startsWith("BalancerMember"))
            .map((l) => {
              const mm = /^BalancerMember "([^"]+)" route=(\S+) retry=(\d+)/.exec(l);
              assert.ok(mm, l);
              return { url: mm[1], route: mm[2], retry: Number(mm[3]) };
            });
          assert.deepEqual(
            cfg.balancer.members.map((x) => ({ url: x.url, route: x.route, retry: x.retry })),
            vhostMembers,
          );
          const pp = /stickysession=(\S+)/.exec(fileOf(balancer, BALANCER_VHOST).content);
          assert.equal(cfg.balancer.stickysession, pp?.[1]);
          assert.equal(cfg.balancer.name, "drupal");
        });

        it("the proxy-node agent config has no workers (agent mode never clusters)", () => {
          const cfg = JSON.parse(fileOf(balancer, PROXY_NODE_CONFIG).content) as ProxyNodeConfig;
          assert.ok(!("workers" in cfg), `workers: ${JSON.stringify(cfg.workers)}`);
        });
      } else {
        it("proxy-node engine: no Apache on the balancer, proxy-node serves the members", () => {
          assert.ok(!balancer.packages.includes("apache2"), balancer.packages.join(" "));
          assert.ok(!balancer.files.some((f) => f.path.startsWith("/etc/apache2/")));
          const cfg = JSON.parse(fileOf(balancer, PROXY_NODE_CONFIG).content) as ProxyNodeConfig;
          assert.equal(cfg.mode, "serve");
          assert.equal(cfg.balancer.stickysession, c.stickysession);
          assert.equal(cfg.balancer.stickysessionsep, ".");
          assert.deepEqual(
            cfg.balancer.members.map((x) => [x.url, x.route, x.retry]),
            webNames.map((name, i) => [`http://10.0.0.${11 + i}:80`, name, 10]),
          );
          for (const net of MANAGER_ALLOW) assert.ok(cfg.manager.allow.includes(net), cfg.manager.allow.join(" "));
        });

        it('proxy-node engine: workers "auto" by default', () => {
          const cfg = JSON.parse(fileOf(balancer, PROXY_NODE_CONFIG).content) as ProxyNodeConfig;
          assert.equal(cfg.workers, "auto");
        });
      }

      it("config.json is valid JSON", () => {
        assert.doesNotThrow(() => JSON.parse(fileOf(balancer, PROXY_NODE_CONFIG).content));
      });

      it("each web server stamps its own route into the sticky cookie", () => {
        webNames.forEach((name, i) => {
          const web = host(payloads, name);
          const lines = directives(fileOf(web, WEB_VHOST).content);
          assert.ok(lines.includes("RewriteEngine On"), lines.join("\n"));
          const rules = lines.filter((l) => l.startsWith("RewriteRule"));
          assert.deepEqual(rules, [`RewriteRule .* - [CO=${cookie}:balancer.${name}:cluster.example.org:0:/]`]);
          assert.ok(lines.includes(`ServerAlias ${name} 10.0.0.${11 + i}`), lines.join("\n"));
        });
      });

      it("the web servers' cookie is the one the balancer reads, with a route the balancer knows", () => {
        const cfg = JSON.parse(fileOf(balancer, PROXY_NODE_CONFIG).content) as ProxyNodeConfig;
        const routes = new Set(cfg.balancer.members.map((x) => x.route));
        for (const name of webNames) {
          const rule = directives(fileOf(host(payloads, name), WEB_VHOST).content).find((l) => l.startsWith("RewriteRule"))!;
          const co = /\[CO=([^:]+):([^:]+):/.exec(rule);
          assert.ok(co, rule);
          assert.equal(co[1], cfg.balancer.stickysession.split("|")[0]);
          // Apache takes the route after the first separator.
          const value = co[2];
          const route = value.slice(value.indexOf(cfg.balancer.stickysessionsep) + 1);
          assert.equal(route, name);
          assert.ok(routes.has(route), `route ${route} unknown to the balancer`);
        }
      });

      it("data server: MariaDB on the cluster address, grants only for the web servers", () => {
        const data = host(payloads, "data");
        const cnf = directives(data.files.find((f) => f.path.endsWith(".cnf"))!.content);
        assert.ok(cnf.includes("bind-address = 10.0.0.10"), cnf.join("\n"));
        const sql = data.files.find((f) => f.path.endsWith("bootstrap.sql"))!.content;
        const grantees = [...sql.matchAll(/^GRANT .* TO '([^']+)'@'([^']+)';$/gm)].map((x) => x[2]);
        assert.deepEqual(
          grantees,
          webNames.map((_, i) => `10.0.0.${11 + i}`),
        );
      });
    });
  }
});

describe("proxy-node workers in the rendered config.json", () => {
  function rendered(values: Values): { text: string; cfg: ProxyNodeConfig } {
    const text = fileOf(host(buildPayloads(model(values), SECRETS, ARTIFACTS), "balancer"), PROXY_NODE_CONFIG).content;
    return { text, cfg: JSON.parse(text) as ProxyNodeConfig };
  }
  function withWorkers(engine: "apache" | "proxy-node", workers?: unknown): Values {
    const values = sshValues({ engine });
    if (workers !== undefined) (values.balancer as Values).proxyNodeWorkers = workers;
    return values;
  }

  for (const [given, expected] of [
    [1, 1],
    [2, 2],
    [64, 64],
    ["3", 3],
    ["auto", "auto"],
  ] as const) {
    it(`engine proxy-node, balancer.proxyNodeWorkers ${JSON.stringify(given)}: "workers": ${JSON.stringify(expected)}`, () => {
      assert.equal(rendered(withWorkers("proxy-node", given)).cfg.workers, expected);
    });
  }

  it("engine apache: no workers in the agent's config", () => {
    const { text, cfg } = rendered(withWorkers("apache"));
    assert.equal(cfg.mode, "agent");
    assert.ok(!("workers" in cfg));
    assert.doesNotMatch(text, /workers/);
  });

  it('proxy-node\'s own validation accepts what is rendered and resolves "auto" to a worker count', () => {
    const auto = validateProxyNodeConfig(rendered(withWorkers("proxy-node")).cfg);
    assert.equal(auto.mode, "serve");
    assert.ok(Number.isInteger(auto.workers) && auto.workers >= 1 && auto.workers <= 64, String(auto.workers));
    assert.equal(validateProxyNodeConfig(rendered(withWorkers("proxy-node", 3)).cfg).workers, 3);
    const agent = validateProxyNodeConfig(rendered(withWorkers("apache")).cfg);
    assert.equal(agent.mode, "agent");
    assert.equal(agent.workers, 1);
  });
});

describe("secret files", () => {
  const configs = [
    { label: "probe app, apache", values: sshValues() },
    { label: "probe app, proxy-node", values: sshValues({ engine: "proxy-node", webCount: 3 }) },
    { label: "drupal app", values: sshValues({ app: "drupal" }) },
  ];
  for (const c of configs) {
    it(`${c.label}: files marked secret are exactly those whose content changes with the secrets`, () => {
      const m = model(c.values);
      const a = buildPayloads(m, SECRETS, ARTIFACTS);
      const b = buildPayloads(m, OTHER_SECRETS, ARTIFACTS);
      const wrong: string[] = [];
      a.forEach((pa: HostPayload, i) => {
        assert.deepEqual(
          b[i].files.map((f) => f.path),
          pa.files.map((f) => f.path),
          "the file layout must not depend on secrets",
        );
        pa.files.forEach((fa, j) => {
          const changed = fa.content !== b[i].files[j].content;
          if (changed !== fa.secret) wrong.push(`${pa.host.name}:${fa.path} secret=${fa.secret} but changes=${changed}`);
        });
      });
      assert.deepEqual(wrong, []);
      assert.ok(
        a.some((p) => p.files.some((f) => f.secret)),
        "some file must hold the database password",
      );
    });

    it(`${c.label}: no non-secret file contains a secret, and secret files are not world-readable`, () => {
      const payloads = buildPayloads(model(c.values), SECRETS, ARTIFACTS);
      const needles = [...Object.values(SECRETS), "Pa55", "7f3a9c2e", "0b1d2e"];
      for (const p of payloads) {
        for (const f of p.files) {
          if (f.secret) {
            assert.match(f.mode, /^0?[0-7][0-7]0$/, `${p.host.name}:${f.path} mode ${f.mode} lets everyone read a secret`);
            continue;
          }
          for (const n of needles) assert.ok(!f.content.includes(n), `${p.host.name}:${f.path} contains secret text "${n}"`);
        }
      }
    });
  }

  it("the database password reaches the web servers and the data server, escaped for PHP and SQL", () => {
    const payloads = buildPayloads(model(sshValues()), SECRETS, ARTIFACTS);
    const php = fileOf(host(payloads, "lb1"), "/var/www/probe/config.php").content;
    assert.ok(php.includes(`'password' => 'db-Pa55\\'word\\\\with-quotes',`), php);
    const sql = fileOf(host(payloads, "data"), "/etc/drupal-cluster/bootstrap.sql").content;
    assert.ok(sql.includes(`IDENTIFIED BY 'db-Pa55''word\\\\with-quotes';`), sql);
  });

  it("drupal: every web server gets the same hash_salt", () => {
    const payloads = buildPayloads(model(sshValues({ app: "drupal", webCount: 3 })), SECRETS, ARTIFACTS);
    const salts = ["lb1", "lb2", "lb3"].map((n) => {
      const s = fileOf(host(payloads, n), "/var/www/drupal/web/sites/default/settings.php").content;
      return /\$settings\['hash_salt'\] = (.*);/.exec(s)?.[1];
    });
    assert.deepEqual(salts, Array(3).fill(`'${SECRETS.hashSalt}'`));
  });
});

describe("handlebars strict mode", () => {
  it("a missing value fails the render with an error naming the template and the value", () => {
    const view = {
      stack: "drupal-cluster/test",
      serverName: "x",
      logLevel: "warn",
      name: "drupal",
      members: [],
      retry: 1,
      lbmethod: "byrequests",
      stickysession: "BALANCEID",
      managerAllow: [],
    };
    assert.throws(
      () => render("balancer/apache2/balancer-vhost.conf.hbs", view),
      (e: unknown) => {
        assert.ok(e instanceof TemplateError, String(e));
        assert.match(e.message, /balancer\/apache2\/balancer-vhost\.conf\.hbs/);
        assert.match(e.message, /\{\{int port\}\}/);
        return true;
      },
    );
  });

  it("a missing value given to the sql helper inside a loop fails too", () => {
    assert.throws(
      () => render("data/mariadb/bootstrap.sql.hbs", { stack: "s", database: "d", user: "u", clients: ["10.0.0.1"], probe: false }),
      /template data\/mariadb\/bootstrap\.sql\.hbs: /,
    );
  });

  // Handlebars' strict mode only checks plain {{value}} lookups: helper arguments
  // ({{json x}}) and block helper arguments ({{#each x}}, {{#if x}}) are looked up
  // leniently, so a missing value there still renders silently.
  const missingInHelpers: Array<[string, string, object]> = [
    [
      "balancer/apache2/balancer-vhost.conf.hbs",
      "members (#each: renders a balancer without members)",
      {
        stack: "s",
        serverName: "x",
        httpPort: 80,
        logLevel: "warn",
        name: "drupal",
        retry: 1,
        lbmethod: "byrequests",
        stickysession: "BALANCEID",
        managerAllow: [],
      },
    ],
    [
      "data/mariadb/bootstrap.sql.hbs",
      "probe (#if: silently drops the sessions table)",
      { stack: "s", database: "d", user: "u", dbPassword: "p", clients: ["10.0.0.11"] },
    ],
  ];
  for (const [name, missing, view] of missingInHelpers) {
    it(`${name}: a missing ${missing} fails the render`, () => {
      let out: string;
      try {
        out = render(name, view);
      } catch (e) {
        assert.ok(e instanceof TemplateError, String(e));
        assert.ok(e.message.includes(name), e.message);
        return;
      }
      assert.fail(`rendered without error:\n${out}`);
    });
  }

  it("balancer.connectTimeout and timeout bound every wait on a member: Apache's BalancerMember, proxy-node's connect, answer and health probe deadlines", () => {
    for (const [settings, connect, answer] of [
      [{}, 2, 60],
      [{ connectTimeout: 5, timeout: 20 }, 5, 20],
    ] as const) {
      for (const engine of ["apache", "proxy-node"] as const) {
        const v = sshValues({ engine });
        Object.assign(v.balancer as Values, settings);
        const balancer = buildPayloads(model(v), SECRETS, ARTIFACTS).find((p) => p.host.role === "balancer") as HostPayload;
        const cfg = validateProxyNodeConfig(JSON.parse(fileOf(balancer, PROXY_NODE_CONFIG).content));
        assert.equal(cfg.timeouts.connectMs, connect * 1000);
        assert.equal(cfg.timeouts.headersMs, answer * 1000);
        assert.equal(cfg.balancer.healthCheck?.timeoutMs, connect * 1000, "the probe's deadline (connect and answer) is the connect deadline");
        if (engine === "apache") {
          const members = directives(fileOf(balancer, BALANCER_VHOST).content).filter((l) => l.startsWith("BalancerMember"));
          for (const m of members) assert.match(m, new RegExp(` connectiontimeout=${connect} timeout=${answer} disablereuse=On$`));
        }
      }
    }
  });

  it("balancer.reuseConnections: Apache opens a connection per request unless told to keep them", () => {
    for (const [reuse, expected] of [
      [undefined, true],
      [false, true],
      [true, false],
    ] as const) {
      const v = sshValues({ engine: "apache" });
      if (reuse !== undefined) (v.balancer as Values).reuseConnections = reuse;
      const balancer = buildPayloads(model(v), SECRETS, ARTIFACTS).find((p) => p.host.role === "balancer") as HostPayload;
      const members = directives(fileOf(balancer, BALANCER_VHOST).content).filter((l) => l.startsWith("BalancerMember"));
      assert.equal(members.length, 2);
      for (const m of members) assert.equal(m.endsWith(" disablereuse=On"), expected, `reuseConnections ${reuse}: ${m}`);
    }
  });

  it("every service of every host has a boot script that starts it, for hosts without an init system", () => {
    for (const p of buildPayloads(model(sshValues({ engine: "apache" })), SECRETS, ARTIFACTS)) {
      const boot = p.files.filter((f) => f.path.startsWith("/etc/drupal-cluster/boot.d/"));
      assert.deepEqual(
        boot.map((f) => f.path.replace(/^.*\/\d+-/, "")),
        p.services.map((s) => s.name),
        p.host.name,
      );
      boot.forEach((f, i) => {
        assert.equal(f.mode, "0755");
        assert.ok(f.content.startsWith("#!/bin/sh\n") && f.content.includes(p.services[i].start), f.content);
      });
    }
  });

  it("a template that does not exist fails with its name", () => {
    assert.throws(() => render("nope/missing.hbs", {}), /template nope\/missing\.hbs/);
  });
});
