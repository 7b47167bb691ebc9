/**
 * Issue 15: every setting is checked against what the place it lands in accepts,
 * before anything is created. One case per row of the table (the hostile
 * or host-refused value is refused with its key named), plus the values the
 * stacks really use, which must keep passing.
 */
import assert from "node:assert/strict";
import { ConfigError } from "../../infra/config/errors";
import { SEPARATORS } from "../../infra/config/grammar";
import { WEB_ROOT } from "../../infra/config/paths";
import { modelFromStackFile } from "../../infra/config/stack-file";
import { validateConfig } from "../../infra/config/validate";
import { buildPayloads } from "../../infra/payload/index";
import { ARTIFACTS, dockerValues, model, PROJECT, SECRETS, sshValues, Values } from "../support/cluster-configs";
import { runWithMocks, TEST_STACK_SECRETS } from "../support/pulumi-mocks";

/** A deep copy of the values with one change, so cases cannot leak into each other. */
function edit(values: Values, change: (v: any) => void): Values {
  const copy = structuredClone(values);
  change(copy);
  return copy;
}

/** The ConfigError these values give: it must carry and name `key`, and say what is accepted. */
function refused(values: Values, key: string, ...mentions: (string | RegExp)[]): ConfigError {
  let caught: unknown;
  try {
    validateConfig({ project: PROJECT, stack: "test" }, values);
  } catch (e) {
    caught = e;
  }
  const full = `${PROJECT}:${key}`;
  assert.ok(caught !== undefined, `expected ${full} to be refused, but the config was accepted`);
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  assert.equal(caught.key, full, `wrong key in: ${caught.message}`);
  assert.ok(caught.message.startsWith(`config ${full}: `), `message does not start with the key: ${caught.message}`);
  assert.match(caught.message, /use |accepted/, `message does not say what is accepted: ${caught.message}`);
  assert.ok(!caught.message.includes("\n"), `a newline of the value reached the message: ${caught.message}`);
  for (const m of mentions) {
    if (typeof m === "string") assert.ok(caught.message.includes(m), `message lacks "${m}": ${caught.message}`);
    else assert.match(caught.message, m);
  }
  return caught;
}

const ssh = sshValues();
const drupalTarball = sshValues({ app: "drupal" });
const drupalComposer = edit(drupalTarball, (v) => (v.drupal = { source: "composer", version: "^10" }));

describe("issue 15: each row of the injection table is refused with its key named", () => {
  it("the base configs are accepted (so each refusal below comes from its one change)", () => {
    for (const v of [ssh, drupalTarball, drupalComposer, dockerValues(), sshValues({ engine: "proxy-node" })]) model(v);
  });

  it("web[].address carrying SQL (extra statements in bootstrap.sql)", () => {
    const sql = "172.30.57.11' IDENTIFIED BY 'x'; CREATE USER 'evil'@'%' IDENTIFIED BY 'x'; GRANT ALL ON *.* TO 'evil'@'%' WITH GRANT OPTION; -- ";
    refused(
      edit(ssh, (v) => (v.web[0].address = sql)),
      "web[0].address",
      "IPv4 address or a host name",
    );
    refused(
      edit(ssh, (v) => (v.web[1].address = "%")),
      "web[1].address",
    );
  });

  it("web[].address with a newline and an NFS export line", () => {
    refused(
      edit(ssh, (v) => (v.web[1].address = "10.0.0.12\n/ *(rw,no_root_squash,insecure)")),
      "web[1].address",
      "\\n",
    );
  });

  it("data.address with a newline and MariaDB options", () => {
    refused(
      edit(ssh, (v) => (v.data.address = "172.30.57.10\nskip-grant-tables\nbind-address = 0.0.0.0")),
      "data.address",
    );
  });

  it("data.address with a command substitution", () => {
    refused(
      edit(ssh, (v) => (v.data.address = "172.30.57.10$(touch /tmp/x)")),
      "data.address",
    );
  });

  it("drupal.url with shell quoting that passed the old \\S+\\.tar\\.gz pattern", () => {
    refused(
      edit(drupalTarball, (v) => (v.drupal.url = "https://x/';touch${IFS}/tmp/x;'.tar.gz")),
      "drupal.url",
      ".tar.gz",
    );
  });

  it("drupal.version with shell quoting", () => {
    refused(
      edit(drupalComposer, (v) => (v.drupal.version = "^10' ; touch /tmp/x ; '")),
      "drupal.version",
      "composer version constraint",
    );
  });

  for (const bad of ["/srv/f;touch /tmp/x", "/", "/etc", "/var/www/probe", "/var/www/drupal/web"]) {
    it(`files.publicPath ${JSON.stringify(bad)}`, () => {
      refused(
        edit(ssh, (v) => (v.files.publicPath = bad)),
        "files.publicPath",
        JSON.stringify(bad),
      );
    });
  }

  it("serverName with newlines and an Alias directive, or with a space", () => {
    refused(
      edit(ssh, (v) => (v.serverName = "cluster.example.org\nAlias /leak /etc")),
      "serverName",
      "host name",
    );
    refused(
      edit(ssh, (v) => (v.serverName = "cluster.example.org other")),
      "serverName",
    );
  });

  for (const bad of ["balancer]\nRewriteRule .* /etc/passwd [L].", "bal\nancer.", "%{HTTP_HOST}."]) {
    it(`balancer.cookieValuePrefix ${JSON.stringify(bad)}`, () => {
      refused(
        edit(ssh, (v) => (v.balancer.cookieValuePrefix = bad)),
        "balancer.cookieValuePrefix",
        "letters, digits",
      );
    });
  }

  for (const bad of [":", "\\", "]", "$", "%", ",", ";", "=", "/", "__", ""]) {
    it(`balancer.stickysessionsep ${JSON.stringify(bad)} that is not inert in a cookie and in [CO=...]`, () => {
      const values = edit(ssh, (v) => {
        v.balancer.stickysessionsep = bad;
        v.balancer.cookieValuePrefix = `balancer${bad}`;
      });
      // "" is read as "not set" (the default "."), and then the prefix lacks it.
      refused(values, bad === "" ? "balancer.cookieValuePrefix" : "balancer.stickysessionsep");
    });
  }

  for (const sep of SEPARATORS) {
    it(`balancer.stickysessionsep ${JSON.stringify(sep)} is accepted and set on Apache's ProxyPass when it is not "."`, () => {
      const m = model(edit(ssh, (v) => (v.balancer.stickysessionsep = sep)));
      assert.equal(m.web[0].stickyValue, `balancer${sep}lb1`);
      const vhost = buildPayloads(m, SECRETS, ARTIFACTS)
        .flatMap((p) => p.files)
        .find((f) => f.path === "/etc/apache2/sites-available/drupal-cluster-balancer.conf");
      assert.ok(vhost, "the balancer vhost was not rendered");
      const proxyPass = vhost.content.split("\n").find((l) => /^\s*ProxyPass \/ /.test(l));
      assert.ok(proxyPass, vhost.content);
      // Apache's own default is ".", so it is left out; any other must be said.
      if (sep === ".") assert.doesNotMatch(proxyPass, /stickysessionsep/);
      else assert.match(proxyPass, new RegExp(`"?stickysessionsep=\\${sep}"?(\\s|$)`), proxyPass);
    });
  }

  for (const bad of ["SID$1", "SID%1", "SID|path|x", "S ID", `${"S".repeat(60)}|jsessionid`]) {
    it(`balancer.stickysession ${JSON.stringify(bad)}`, () => {
      refused(
        edit(ssh, (v) => (v.balancer.stickysession = bad)),
        "balancer.stickysession",
        "at most 63",
      );
    });
  }

  for (const bad of ["0.0.0.0/0", "::/0", "fe80::1%eth0", "10.0.0.1/8", "::ffff:10.0.0.1", "10.0.0.0/08"]) {
    it(`balancer.managerAllow ${JSON.stringify(bad)} that Apache's Require ip refuses or misreads`, () => {
      refused(
        edit(ssh, (v) => (v.balancer.managerAllow = ["10.0.0.0/8", bad])),
        "balancer.managerAllow[1]",
        JSON.stringify(bad),
      );
    });
  }

  for (const db of ["mysql", "information_schema", "performance_schema", "sys", "MySQL"]) {
    it(`data.database ${JSON.stringify(db)}, a MariaDB system schema`, () => {
      refused(
        edit(ssh, (v) => (v.data.database = db)),
        "data.database",
        "system schema",
      );
    });
  }

  it("data.user root (ALTER USER would take over the server's own account)", () => {
    refused(
      edit(ssh, (v) => (v.data.user = "root")),
      "data.user",
    );
  });

  for (const [i, bad] of [
    [0, "[^]x"],
    [1, "\\u{41}"],
    [1, "\\u0041"],
    [0, "[]"],
    [1, "a{,3}"],
    [0, "[[:alpha:]]"],
  ] as const) {
    it(`trustedHostPatterns ${JSON.stringify(bad)}: JavaScript compiles it, PHP's PCRE does not (or reads it otherwise)`, () => {
      const patterns = ["^cluster\\.example\\.org$", "^cluster\\.example\\.org$"];
      patterns[i] = bad;
      refused(
        edit(ssh, (v) => (v.trustedHostPatterns = patterns)),
        `trustedHostPatterns[${i}]`,
        "PCRE",
      );
    });
  }

  describe("limits that only Apache or proxy-node would have refused, on the host", () => {
    it("a route of 64 characters (Apache: route length must be < 64)", () => {
      refused(
        edit(ssh, (v) => (v.web[0].route = "r".repeat(64))),
        "web[0].route",
        "at most 63",
      );
      assert.equal(model(edit(ssh, (v) => (v.web[0].route = "r".repeat(63)))).web[0].route.length, 63);
    });

    it("a balancer name of 85 or 104 characters (Apache: balancer://<name> too long beyond 84)", () => {
      refused(
        edit(ssh, (v) => (v.balancer.name = "n".repeat(104))),
        "balancer.name",
        "84",
      );
      refused(
        edit(ssh, (v) => (v.balancer.name = "n".repeat(85))),
        "balancer.name",
      );
      assert.equal(model(edit(ssh, (v) => (v.balancer.name = "n".repeat(84)))).balancer.name.length, 84);
    });

    it("serverName with a /", () => {
      refused(
        edit(ssh, (v) => (v.serverName = "cluster.example.org/x")),
        "serverName",
      );
    });

    it("serverName beyond 253 characters or with a label beyond 63", () => {
      refused(
        edit(ssh, (v) => (v.serverName = `${"a".repeat(64)}.example.org`)),
        "serverName",
      );
      refused(
        edit(ssh, (v) => (v.serverName = Array.from({ length: 5 }, () => "a".repeat(60)).join("."))),
        "serverName",
      );
    });

    it("managerPort 65535: proxy-node's agent would need 65536", () => {
      refused(
        edit(ssh, (v) => (v.balancer.managerPort = 65535)),
        "balancer.managerPort",
        "65536",
      );
    });

    it("httpPort = managerPort + 1: Apache and the agent on one port", () => {
      refused(
        edit(ssh, (v) => (v.balancer.httpPort = 8082)),
        "balancer.managerPort",
        "8082",
        `${PROJECT}:balancer.httpPort`,
      );
    });

    it("httpPort = managerPort", () => {
      refused(
        edit(ssh, (v) => (v.balancer.httpPort = 8081)),
        "balancer.managerPort",
        "8081",
      );
    });

    it("engine proxy-node has no agent listener, so managerPort + 1 is free there", () => {
      assert.equal(model(edit(sshValues({ engine: "proxy-node" }), (v) => (v.balancer.httpPort = 8082))).balancer.httpPort, 8082);
    });

    it("docker target: published ports collide (webDirectPortBase + 1 = httpPort)", () => {
      refused(
        edit(dockerValues(), (v) => (v.docker = { httpPort: 8091, webDirectPortBase: 8090 })),
        "docker.webDirectPortBase",
        "8091",
      );
    });
  });
});

describe("issue 15: more places a setting lands", () => {
  const cases: [key: string, what: string, set: (v: any) => void][] = [
    ["balancer.address", "a trailing space", (v) => (v.balancer.address = "10.0.0.5 ")],
    ["web[0].ssh.host", "a command after ;", (v) => (v.web[0].ssh.host = "203.0.113.11;id")],
    ["data.ssh.user", "a newline", (v) => (v.data.ssh.user = "root\n")],
    ["web[0].address", "loopback 127.0.0.1", (v) => (v.web[0].address = "127.0.0.1")],
    ["web[0].address", "localhost (the grant would be MariaDB's own root@localhost)", (v) => (v.web[0].address = "localhost")],
    ["web[0].address", "IPv6 (member URLs and NFS mounts would need brackets)", (v) => (v.web[0].address = "fd00::11")],
    ["balancer.url", "a path (proxy-node's publicUrl is an origin)", (v) => (v.balancer.url = "http://cluster.example.org/path")],
    ["balancer.cookieDomain", "[CO=...] field syntax", (v) => (v.balancer.cookieDomain = "example.org:0:/;x")],
    ["data.user", "SQL quoting", (v) => (v.data.user = "drupal'@'%")],
    ["localHosts.network", "a regex for docker's name filter", (v) => (v.localHosts = { subnet: "172.30.70.0/24", network: "^.*" })],
    ["localHosts.init", "an init system the host image does not have", (v) => (v.localHosts = { subnet: "172.30.70.0/24", init: "openrc" })],
  ];
  for (const [key, what, set] of cases) {
    it(`${key} with ${what}`, () => {
      refused(edit(ssh, set), key);
    });
  }

  it("the payload's document roots lie under the folder files.publicPath must stay out of", () => {
    for (const app of [ssh, drupalTarball]) {
      for (const f of buildPayloads(model(app), SECRETS, ARTIFACTS).flatMap((p) => p.files)) {
        const root = /^\s*DocumentRoot\s+"?([^"\s]+)/m.exec(f.content)?.[1];
        if (root) assert.ok(root.startsWith(`${WEB_ROOT}/`), `${f.path}: DocumentRoot ${root} is outside ${WEB_ROOT}`);
      }
    }
  });
});

describe("issue 15: values in real use stay accepted", () => {
  for (const stack of ["dev", "staging", "prod", "sandbox"]) {
    it(`Pulumi.${stack}.yaml validates`, () => {
      const m = modelFromStackFile(stack);
      assert.ok(m.web.length >= 2);
    });
  }

  it("host names as addresses, IPv6 as an ssh endpoint, a path below /srv", () => {
    const m = model(
      edit(ssh, (v) => {
        v.web[0].address = "lb1.internal.example.org";
        v.web[0].ssh.host = "2001:db8::11";
        v.data.address = "db-1.internal";
        v.files.publicPath = "/srv/shared/drupal-files_1";
      }),
    );
    assert.equal(m.web[0].host.clusterAddress, "lb1.internal.example.org");
    assert.equal(m.web[0].host.ssh?.host, "2001:db8::11");
    assert.equal(m.files.publicPath, "/srv/shared/drupal-files_1");
  });

  for (const version of ["^10", "~10.3.0", "10.3.*", ">=10.2 <11", "^10.3 || ^11", "10.3.6", "10.x-dev", "^10@beta", "10.3.0 - 10.3.9", ">=10.2, <11"]) {
    it(`drupal.version ${JSON.stringify(version)}`, () => {
      const m = model(edit(drupalComposer, (v) => (v.drupal.version = version)));
      assert.deepEqual(m.app, { kind: "drupal", source: { type: "composer", version } });
    });
  }

  for (const pattern of [
    "^www\\.example\\.com$",
    "^(.+\\.)?example\\.org$",
    "^[a-z0-9-]+\\.example\\.com$",
    "^(?:a|b)\\.example\\.com$",
    "^node\\d{1,3}\\.lan$",
  ]) {
    it(`trustedHostPatterns ${JSON.stringify(pattern)}`, () => {
      assert.deepEqual(model(edit(ssh, (v) => (v.trustedHostPatterns = [pattern]))).trustedHostPatterns, [pattern]);
    });
  }

  it("the default trusted host pattern made from serverName passes its own check", () => {
    for (const serverName of ["cluster.example.org", "127.0.0.1", "a-b.example"]) {
      const m = model(edit(ssh, (v) => (v.serverName = serverName)));
      assert.equal(m.trustedHostPatterns.length, 1);
    }
  });

  it("Tomcat style stickysession, a custom separator with its prefix, a leading-dot cookie domain", () => {
    const m = model(
      edit(ssh, (v) => {
        v.balancer.stickysession = "JSESSIONID|jsessionid";
        v.balancer.stickysessionsep = "_";
        v.balancer.cookieValuePrefix = "node-a_";
        v.balancer.cookieDomain = ".example.org";
      }),
    );
    assert.equal(m.web[1].stickyValue, "node-a_lb2");
  });

  it("managerAllow networks in network form, v4 and v6", () => {
    const allow = ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "::1", "172.16.0.0/12", "10.1.2.3/32"];
    assert.deepEqual(model(edit(ssh, (v) => (v.balancer.managerAllow = allow))).balancer.managerAllow, allow);
  });
});

describe("issue 15: a secret its consumer would refuse stops the program before any resource", function () {
  // Dynamic providers are serialized per resource type: slow the first time.
  this.timeout(120000);
  type Program = typeof import("../../infra/program");
  let program: Program;

  before(async () => {
    await runWithMocks("import", {}, {}, () => undefined);
    program = await import("../../infra/program");
  });

  for (const [label, token] of [
    ["7 characters", "short-7"],
    ["a space", "token with space"],
    ["a control character", "token-with-\u0007-bell"],
    ["a non-ASCII character", "tökentöken"],
  ] as const) {
    it(`managerToken with ${label}: proxy-node's rule, ConfigError naming it, value not shown, nothing registered`, async () => {
      const run = await runWithMocks("unit-secret", sshValues(), { ...TEST_STACK_SECRETS, managerToken: token }, () => program.clusterProgram(ARTIFACTS));
      assert.ok(run.error instanceof ConfigError, `expected a ConfigError, got ${String(run.error)}`);
      assert.equal(run.error.key, `${PROJECT}:managerToken`);
      assert.match(run.error.message, /at least 8 printable ASCII characters without spaces/);
      assert.ok(!run.error.message.includes(token), `the secret is in the message: ${run.error.message}`);
      assert.equal(run.registrations.length, 0, run.registrations.map((r) => r.name).join(", "));
    });
  }

  it("an empty dbPassword: ConfigError naming it, nothing registered", async () => {
    const run = await runWithMocks("unit-secret", sshValues(), { ...TEST_STACK_SECRETS, dbPassword: "" }, () => program.clusterProgram(ARTIFACTS));
    assert.ok(run.error instanceof ConfigError, `expected a ConfigError, got ${String(run.error)}`);
    assert.equal(run.error.key, `${PROJECT}:dbPassword`);
    assert.equal(run.registrations.length, 0);
  });

  it("a token proxy-node accepts: the program runs", async () => {
    const run = await runWithMocks("unit-secret", sshValues(), { ...TEST_STACK_SECRETS, managerToken: "8chars!!" }, () => program.clusterProgram(ARTIFACTS));
    assert.equal(run.error, undefined, String(run.error));
    assert.ok(run.registrations.length > 0);
  });
});
