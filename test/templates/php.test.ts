/**
 * PHP on the web servers (issue 16): the `php` settings (sizes in php.ini's
 * shorthand, seconds, OPcache's MB, the workers' limit), what the payload
 * renders (an ini file linked into every PHP's Apache conf.d, Apache's prefork
 * limits), and which changes reload Apache and which restart it.
 */
import assert from "node:assert/strict";
import { PHP_MAX_EXECUTION_TIME, PHP_OPCACHE_MEMORY, PHP_SIZES, PHP_WORKERS } from "../../infra/config/php";
import { sourced, UnsafeValueError } from "../../infra/payload/escape";
import { buildPayloads } from "../../infra/payload/index";
import { render } from "../../infra/payload/render";
import { HostPayload } from "../../infra/payload/types";
import { ARTIFACTS, model, PROJECT, SECRETS, sshValues, Values, refusal } from "../support/cluster-configs";
import { directives, fileOf, host } from "../support/payloads";

const INI = "/etc/drupal-cluster/php-apache2.ini";
const WORKERS = "/etc/apache2/conf-available/drupal-cluster-workers.conf";
const VHOST = "/etc/apache2/sites-available/drupal-cluster-web.conf";

function withPhp(php: Record<string, unknown>, values: Values = sshValues()): Values {
  return { ...values, php };
}

function lb1(values: Values): HostPayload {
  return host(buildPayloads(model(values), SECRETS, ARTIFACTS), "lb1");
}

/** `name = value` lines of an ini file. */
function ini(content: string): Record<string, string> {
  return Object.fromEntries(
    content
      .split("\n")
      .filter((l) => l.trim() !== "" && !l.startsWith(";"))
      .map((l) => l.split("=").map((x) => x.trim()) as [string, string]),
  );
}

describe("php: settings", () => {
  it("defaults: memory_limit 256M, uploads 32M, posts 64M, 30 s, OPcache 128 MB, 150 workers; rendered into the ini and Apache's prefork limits", () => {
    const m = model(sshValues());
    assert.deepEqual(m.php, {
      memoryLimit: PHP_SIZES.memoryLimit.fallback,
      uploadMaxFilesize: PHP_SIZES.uploadMaxFilesize.fallback,
      postMaxSize: PHP_SIZES.postMaxSize.fallback,
      maxExecutionTime: PHP_MAX_EXECUTION_TIME.fallback,
      opcacheMemory: PHP_OPCACHE_MEMORY.fallback,
      workers: PHP_WORKERS.fallback,
    });
    const p = lb1(sshValues());
    assert.deepEqual(ini(fileOf(p, INI).content), {
      memory_limit: "256M",
      upload_max_filesize: "32M",
      post_max_size: "64M",
      max_execution_time: "30",
      "opcache.memory_consumption": "128",
    });
    assert.deepEqual(directives(fileOf(p, WORKERS).content), ["<IfModule mpm_prefork_module>", "ServerLimit 150", "MaxRequestWorkers 150", "</IfModule>"]);
  });

  it("valid values are rendered as given: sizes with K/M/G or in bytes (a YAML number), whole numbers as numbers or text", () => {
    const p = lb1(
      withPhp({ memoryLimit: "1G", uploadMaxFilesize: "2048K", postMaxSize: 268435456, maxExecutionTime: "120", opcacheMemory: 64, workers: "40" }),
    );
    assert.deepEqual(ini(fileOf(p, INI).content), {
      memory_limit: "1G",
      upload_max_filesize: "2048K",
      post_max_size: "268435456",
      max_execution_time: "120",
      "opcache.memory_consumption": "64",
    });
    assert.match(fileOf(p, WORKERS).content, /^\s*ServerLimit 40$/m);
    assert.match(fileOf(p, WORKERS).content, /^\s*MaxRequestWorkers 40$/m);
  });

  const bad: Array<[string, unknown, RegExp]> = [
    ["memoryLimit", "-1", /expected digits and one of K, M or G/],
    ["memoryLimit", "256MB", /expected digits and one of K, M or G/],
    ["memoryLimit", "256 M", /expected digits/],
    ["memoryLimit", "0", /expected digits/],
    ["memoryLimit", "16M", /16M is out of range; use 32M to 16G \[256M\]/],
    ["memoryLimit", "1T", /expected digits/],
    ["memoryLimit", 1.5, /expected digits/],
    ["uploadMaxFilesize", "3G", /out of range; use 1M to 2G/],
    ["postMaxSize", "512K", /out of range; use 1M to 2G/],
    ["maxExecutionTime", 0, /from 1 to 3600/],
    ["maxExecutionTime", "30s", /from 1 to 3600/],
    ["opcacheMemory", 4, /from 8 to 4096/],
    ["workers", 1, /from 2 to 1000/],
    ["workers", 1001, /from 2 to 1000/],
  ];
  for (const [name, value, why] of bad) {
    it(`php.${name} = ${JSON.stringify(value)} is refused, naming the key`, () => {
      const e = refusal(withPhp({ [name]: value }));
      assert.equal(e.key, `${PROJECT}:php.${name}`);
      assert.match(e.message, why);
    });
  }

  it("php.postMaxSize below php.uploadMaxFilesize is refused (PHP would drop every larger upload), naming postMaxSize", () => {
    const e = refusal(withPhp({ uploadMaxFilesize: "100M", postMaxSize: "64M" }));
    assert.equal(e.key, `${PROJECT}:php.postMaxSize`);
    assert.match(e.message, /64M is below php\.uploadMaxFilesize \(100M\)/);
  });

  it("an unknown php key (php.ini's own spelling) is refused with the accepted ones", () => {
    const e = refusal(withPhp({ memory_limit: "512M" }));
    assert.equal(e.key, `${PROJECT}:php.memory_limit`);
    assert.match(e.message, /accepted here: memoryLimit, uploadMaxFilesize, postMaxSize, maxExecutionTime, opcacheMemory, workers/);
  });

  it("injection into a php.ini line (a new directive, a comment, an operator, interpolation) is refused for every size, naming the key", () => {
    const attempts = ["256M\nauto_prepend_file = /tmp/x", "256M;", "256M ; x", "${HOME}", "256M|1", '"256M"', "256M\r\n", "1G&~0", "!0", "256M\u0000"];
    for (const name of Object.keys(PHP_SIZES)) {
      for (const value of attempts) {
        const e = refusal(withPhp({ [name]: value }));
        assert.equal(e.key, `${PROJECT}:php.${name}`, `php.${name} = ${JSON.stringify(value)}`);
      }
    }
  });

  it("the ini template refuses a size that bypassed validation, naming its setting (the second line of defence)", () => {
    const view = {
      stack: "p/s",
      hostName: "lb1",
      memoryLimit: sourced(`${PROJECT}:php.memoryLimit`, "256M\nauto_prepend_file=/tmp/x"),
      uploadMaxFilesize: "32M",
      postMaxSize: "64M",
      maxExecutionTime: 30,
      opcacheMemory: 128,
    };
    assert.throws(
      () => render("web/php/drupal-cluster.ini.hbs", view),
      (e: Error) => e instanceof UnsafeValueError && e.key === `${PROJECT}:php.memoryLimit` && /php\.ini size/.test(e.message),
    );
  });
});

describe("php: what reloads Apache and what restarts it", () => {
  const svc = (p: HostPayload) => {
    const s = p.services.find((x) => x.name === "apache2");
    assert.ok(s, "no apache2 service on lb1");
    return s;
  };

  it("the workers' limit restarts Apache (a graceful restart ignores a new ServerLimit); the vhost, the app and the PHP settings reload it", () => {
    const s = svc(lb1(sshValues()));
    assert.equal(s.reload, "service apache2 reload");
    assert.equal(s.restart, "service apache2 restart");
    assert.deepEqual(s.restartWatch, [WORKERS]);
    assert.ok(!s.watch.includes(WORKERS), "the workers' file also reloads Apache: its change would reload and restart");
    for (const path of [VHOST, INI, "/var/www/probe/php.php"]) assert.ok(s.watch.includes(path), `${path} does not reload Apache`);
  });

  it("a change of php.workers changes only the restart-watched file; a change of php.memoryLimit only a reload-watched one", () => {
    const before = lb1(sshValues());
    const changed = (after: HostPayload): string[] => after.files.filter((f) => fileOf(before, f.path).content !== f.content).map((f) => f.path);
    assert.deepEqual(changed(lb1(withPhp({ workers: 100 }))), [WORKERS]);
    assert.deepEqual(changed(lb1(withPhp({ memoryLimit: "512M" }))), [INI]);
  });

  it("the ini is linked into every PHP's Apache conf.d at configure time (no PHP version in the program), and a refresh finds a missing link", () => {
    const step = lb1(sshValues()).configure.find((s) => s.name === "link-php-settings");
    assert.ok(step, "no link step");
    assert.match(step.run, /\/etc\/php\/\*\/apache2\/conf\.d/);
    assert.match(step.run, /ln -sfn \/etc\/drupal-cluster\/php-apache2\.ini "\$d"\/90-drupal-cluster\.ini/);
    assert.ok(step.check && /readlink/.test(step.check), "the link step has no check");
    const enable = lb1(sshValues()).configure.find((s) => s.name === "enable-site");
    assert.match(enable?.run ?? "", /a2enconf -q drupal-cluster-workers/);
  });
});
