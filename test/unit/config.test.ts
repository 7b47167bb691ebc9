import assert from "node:assert/strict";
import { ConfigError } from "../../infra/config/errors";
import { validateConfig } from "../../infra/config/validate";
import { dockerValues, model, PROJECT, sshValues, Values } from "../support/cluster-configs";

/** Applies a change to a fresh copy of the values (deep, so cases cannot leak into each other). */
function edit(values: Values, change: (v: any) => void): Values {
  const copy = structuredClone(values);
  change(copy);
  return copy;
}

/**
 * The one ConfigError that validateConfig throws for these values: its key must be
 * the full key as the operator writes it, and the message must name it and what is accepted.
 */
function configError(values: Values, key: string, ...mentions: (string | RegExp)[]): ConfigError {
  let caught: unknown;
  try {
    validateConfig({ project: PROJECT, stack: "test" }, values);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught !== undefined, `expected a ConfigError for ${key}, but the config was accepted`);
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  assert.equal(caught.key, key, `wrong key in: ${caught.message}`);
  assert.ok(caught.message.includes(key), `message does not name ${key}: ${caught.message}`);
  for (const m of mentions) {
    if (typeof m === "string") assert.ok(caught.message.includes(m), `message lacks "${m}": ${caught.message}`);
    else assert.match(caught.message, m);
  }
  return caught;
}

describe("validateConfig: each bad setting stops with one ConfigError naming the key", () => {
  const base = sshValues();

  it("accepts the base configs (so the errors below come from the one change)", () => {
    assert.equal(model(base).web.length, 2);
    assert.equal(model(dockerValues()).target, "docker");
  });

  it("unknown target", () => {
    configError(
      edit(base, (v) => (v.target = "kubernetes")),
      `${PROJECT}:target`,
      '"kubernetes"',
      "ssh, docker",
    );
  });

  it("missing target", () => {
    configError(
      edit(base, (v) => delete v.target),
      `${PROJECT}:target`,
      "required",
    );
  });

  it("unknown lbmethod", () => {
    configError(
      edit(base, (v) => (v.balancer.lbmethod = "roundrobin")),
      `${PROJECT}:balancer.lbmethod`,
      '"roundrobin"',
      "byrequests, bybusyness, bytraffic",
    );
  });

  it("unknown engine", () => {
    configError(
      edit(base, (v) => (v.balancer.engine = "nginx")),
      `${PROJECT}:balancer.engine`,
      '"nginx"',
      "apache, proxy-node",
    );
  });

  it("duplicate route", () => {
    configError(
      edit(base, (v) => {
        v.web[0].route = "a";
        v.web[1].route = "a";
      }),
      `${PROJECT}:web[1].route`,
      /duplicate route "a"/,
    );
  });

  it("duplicate route through a default: lb2 given route lb1", () => {
    configError(
      edit(base, (v) => (v.web[1].route = "lb1")),
      `${PROJECT}:web[1].route`,
      /duplicate route "lb1"/,
    );
  });

  it("route containing the sticky separator '.'", () => {
    configError(
      edit(base, (v) => (v.web[0].route = "lb.1")),
      `${PROJECT}:web[0].route`,
      '"lb.1"',
      '"."',
    );
  });

  it("route containing a custom separator", () => {
    const values = edit(base, (v) => {
      v.balancer.stickysessionsep = "~";
      v.balancer.cookieValuePrefix = "node~";
      v.web[1].route = "lb~2";
    });
    configError(values, `${PROJECT}:web[1].route`, '"~"');
  });

  for (const bad of [0, 70000, "abc", -1, 80.5]) {
    it(`bad port ${JSON.stringify(bad)}`, () => {
      configError(
        edit(base, (v) => (v.balancer.httpPort = bad)),
        `${PROJECT}:balancer.httpPort`,
        "1 to 65535",
      );
      configError(
        edit(base, (v) => (v.web[1].ssh.port = bad)),
        `${PROJECT}:web[1].ssh.port`,
        "1 to 65535",
      );
      configError(
        edit(base, (v) => (v.data.port = bad)),
        `${PROJECT}:data.port`,
        "1 to 65535",
      );
    });
  }

  it("a port given as text (pulumi config set) is accepted", () => {
    assert.equal(model(edit(base, (v) => (v.balancer.httpPort = "8080"))).balancer.httpPort, 8080);
  });

  for (const bad of ["10.0.0.0/33", "10.0.0.300", "not-an-ip", "10.0.0.0/8/1", "10.0.0.0/", "::1/129", ""]) {
    it(`balancer.managerAllow entry ${JSON.stringify(bad)} that does not parse`, () => {
      const values = edit(base, (v) => (v.balancer.managerAllow = ["127.0.0.1", bad]));
      const e = configError(values, `${PROJECT}:balancer.managerAllow[1]`);
      if (bad !== "") assert.ok(e.message.includes(`"${bad}"`), e.message);
    });
  }

  it("managerAllow accepts addresses and CIDR blocks, v4 and v6", () => {
    const m = model(edit(base, (v) => (v.balancer.managerAllow = ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "::1"])));
    assert.deepEqual(m.balancer.managerAllow, ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "::1"]);
  });

  it("cookieValuePrefix without the separator", () => {
    configError(
      edit(base, (v) => (v.balancer.cookieValuePrefix = "balancer")),
      `${PROJECT}:balancer.cookieValuePrefix`,
      '"balancer"',
      'must end with the separator "."',
    );
  });

  it("cookieValuePrefix with an extra separator", () => {
    configError(
      edit(base, (v) => (v.balancer.cookieValuePrefix = "my.balancer.")),
      `${PROJECT}:balancer.cookieValuePrefix`,
      '"my.balancer."',
      "contain no other",
    );
  });

  it("unknown top-level key (a typo) is not silently ignored", () => {
    const e = configError(
      edit(base, (v) => (v.balancr = { lbmethod: "bybusyness" })),
      `${PROJECT}:balancr`,
      "unknown setting",
    );
    for (const accepted of ["target", "balancer", "web", "data"]) assert.ok(e.message.includes(accepted), e.message);
  });

  it("unknown key inside balancer (a typo)", () => {
    configError(
      edit(base, (v) => (v.balancer.lbmetod = "bybusyness")),
      `${PROJECT}:balancer.lbmetod`,
      "unknown setting",
      "lbmethod",
    );
  });

  it("missing ssh for target ssh", () => {
    configError(
      edit(base, (v) => delete v.web[0].ssh),
      `${PROJECT}:web[0].ssh`,
      "required for target ssh",
    );
    configError(
      edit(base, (v) => delete v.data.ssh),
      `${PROJECT}:data.ssh`,
      "required for target ssh",
    );
    configError(
      edit(base, (v) => delete v.balancer.ssh),
      `${PROJECT}:balancer.ssh`,
      "required for target ssh",
    );
  });

  it("ssh on target docker is rejected", () => {
    configError(
      edit(dockerValues(), (v) => (v.web[0].ssh = { host: "10.0.0.1" })),
      `${PROJECT}:web[0].ssh`,
      "only used with target ssh",
    );
  });

  it("empty web list", () => {
    configError(
      edit(base, (v) => (v.web = [])),
      `${PROJECT}:web`,
      "at least one web server",
    );
    configError(
      edit(base, (v) => delete v.web),
      `${PROJECT}:web`,
      "at least one web server",
    );
  });

  it("unknown app", () => {
    configError(
      edit(base, (v) => (v.app = "wordpress")),
      `${PROJECT}:app`,
      "probe, drupal",
    );
  });

  it("bad stickysession", () => {
    configError(
      edit(base, (v) => (v.balancer.stickysession = "A|B|C")),
      `${PROJECT}:balancer.stickysession`,
      "JSESSIONID|jsessionid",
    );
  });

  for (const bad of [0, 65, -1, 2.5, "0", "65", "two", "Auto", "auto ", true, [2], { n: 2 }]) {
    it(`balancer.proxyNodeWorkers ${JSON.stringify(bad)}`, () => {
      const values = edit(sshValues({ engine: "proxy-node" }), (v) => (v.balancer.proxyNodeWorkers = bad));
      configError(values, `${PROJECT}:balancer.proxyNodeWorkers`, "1 to 64", '"auto"');
    });
  }

  it("balancer.proxyNodeWorkers with engine apache (proxy-node serves no clients there)", () => {
    configError(
      edit(base, (v) => (v.balancer.proxyNodeWorkers = 2)),
      `${PROJECT}:balancer.proxyNodeWorkers`,
      "engine proxy-node",
      "remove it",
    );
  });

  it("balancer.reuseConnections with engine proxy-node (it always keeps them, and resends)", () => {
    configError(
      edit(sshValues({ engine: "proxy-node" }), (v) => (v.balancer.reuseConnections = true)),
      `${PROJECT}:balancer.reuseConnections`,
      "engine apache",
      "remove it",
    );
  });

  it("balancer.reuseConnections not a boolean", () => {
    configError(
      edit(base, (v) => (v.balancer.reuseConnections = "yes")),
      `${PROJECT}:balancer.reuseConnections`,
    );
  });

  it("bad docker subnet", () => {
    configError(
      edit(dockerValues(), (v) => (v.docker.subnet = "172.30.99.0/33")),
      `${PROJECT}:docker.subnet`,
    );
    configError(
      edit(dockerValues(), (v) => (v.docker.subnet = "172.30.99.0/28")),
      `${PROJECT}:docker.subnet`,
      "/24",
    );
  });
});

describe("validateConfig: the model", () => {
  it("defaults follow the guide: cookie BALANCEID, value balancer.<route>", () => {
    const m = model(sshValues());
    assert.equal(m.sticky.stickysession, "BALANCEID");
    assert.equal(m.sticky.cookieName, "BALANCEID");
    assert.equal(m.sticky.pathParameter, undefined);
    assert.deepEqual(
      m.web.map((w) => w.stickyValue),
      ["balancer.lb1", "balancer.lb2"],
    );
  });

  it("Tomcat style stickysession JSESSIONID|jsessionid", () => {
    const m = model(sshValues({ stickysession: "JSESSIONID|jsessionid" }));
    assert.equal(m.sticky.stickysession, "JSESSIONID|jsessionid");
    assert.equal(m.sticky.cookieName, "JSESSIONID");
    assert.equal(m.sticky.pathParameter, "jsessionid");
    assert.equal(m.web[0].stickyValue, "balancer.lb1");
  });

  it("5 web servers get routes lb1..lb5", () => {
    const m = model(dockerValues({ webCount: 5 }));
    assert.deepEqual(
      m.web.map((w) => [w.host.name, w.route]),
      [1, 2, 3, 4, 5].map((i) => [`lb${i}`, `lb${i}`]),
    );
    const ssh = model(sshValues({ webCount: 5 }));
    assert.deepEqual(
      ssh.web.map((w) => w.route),
      ["lb1", "lb2", "lb3", "lb4", "lb5"],
    );
  });

  it("docker target assigns fixed addresses from docker.subnet", () => {
    const m = model(dockerValues({ webCount: 3, subnet: "10.44.7.0/24" }));
    assert.equal(m.balancer.host.clusterAddress, "10.44.7.5");
    assert.equal(m.data.host.clusterAddress, "10.44.7.10");
    assert.deepEqual(
      m.web.map((w) => w.host.clusterAddress),
      ["10.44.7.11", "10.44.7.12", "10.44.7.13"],
    );
    assert.deepEqual(
      m.web.map((w) => w.memberUrl),
      ["http://10.44.7.11:80", "http://10.44.7.12:80", "http://10.44.7.13:80"],
    );
    // Published on loopback only by default.
    assert.equal(m.balancer.host.url, "http://127.0.0.1:8080");
    assert.deepEqual(
      m.web.map((w) => w.host.url),
      ["http://127.0.0.1:8091", "http://127.0.0.1:8092", "http://127.0.0.1:8093"],
    );
  });

  it("balancer.proxyNodeWorkers: auto by default; 1 to 64, as a number or as text from pulumi config set", () => {
    const proxyNode = sshValues({ engine: "proxy-node" });
    assert.equal(model(proxyNode).balancer.proxyNodeWorkers, "auto");
    assert.equal(model(dockerValues({ engine: "proxy-node" })).balancer.proxyNodeWorkers, "auto");
    const cases: Array<[unknown, number | "auto"]> = [
      ["auto", "auto"],
      [1, 1],
      [2, 2],
      [64, 64],
      ["4", 4],
      [" 8 ", 8],
      ["", "auto"],
      [null, "auto"],
    ];
    for (const [given, expected] of cases) {
      const m = model(edit(proxyNode, (v) => (v.balancer.proxyNodeWorkers = given)));
      assert.equal(m.balancer.proxyNodeWorkers, expected, `given ${JSON.stringify(given)}`);
    }
    // Engine apache: not set, so nothing to refuse; the model keeps the default, which nothing renders.
    assert.equal(model(sshValues()).balancer.proxyNodeWorkers, "auto");
  });

  it("docker addresses in a larger block stay inside it", () => {
    const m = model(dockerValues({ webCount: 2, subnet: "10.20.0.0/16" }));
    for (const a of [m.balancer.host.clusterAddress, m.data.host.clusterAddress, ...m.web.map((w) => w.host.clusterAddress)]) {
      assert.match(a, /^10\.20\.\d+\.\d+$/);
    }
  });
});
