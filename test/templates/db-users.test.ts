/**
 * The web servers' database users on scale-out and scale-in (issue 16): the data
 * server's grant step records each user it makes, and its step after the
 * balancers drops the recorded users of web servers that left, and no one else.
 * Run against a real MariaDB in the validator container, as the ssh target runs
 * the steps (bash -ec), for 3 web servers, then 2, then 3 again.
 */
import assert from "node:assert/strict";
import { buildPayloads } from "../../infra/payload/index";
import { DB_USERS } from "../../infra/payload/data";
import { HostPayload, PayloadFile, ProvisionStep } from "../../infra/payload/types";
import { ARTIFACTS, model, SECRETS, sshValues } from "../support/cluster-configs";
import { fileOf, host } from "../support/payloads";
import { ensureValidatorImage, q, requireDocker, validateInContainer } from "../support/validator";

function data(webCount: number): HostPayload {
  return host(buildPayloads(model(sshValues({ webCount })), SECRETS, ARTIFACTS), "data");
}

function stepOf(steps: ProvisionStep[] | undefined, name: string): ProvisionStep {
  const s = (steps ?? []).find((x) => x.name === name);
  if (!s) throw new Error(`no step ${name}`);
  return s;
}

/** Files of a payload moved under `root`, so two payloads can sit in one container and be swapped in. */
function under(root: string, files: PayloadFile[]): PayloadFile[] {
  return files.map((f) => ({ ...f, path: `${root}${f.path}` }));
}

describe("templates: the web servers' database users follow the web list (scale out and in)", function () {
  this.timeout(10 * 60_000);

  it("the data server records each user before making it and drops removed ones only after the balancers, both checked by refresh", () => {
    const three = data(3);
    const two = data(2);
    const users = fileOf(two, DB_USERS);
    assert.match(users.content, /^ {2}echo drupal@10\.0\.0\.11$/m);
    assert.match(users.content, /^ {2}echo drupal@10\.0\.0\.12$/m);
    assert.doesNotMatch(users.content, /10\.0\.0\.13/);
    assert.match(fileOf(three, DB_USERS).content, /^ {2}echo drupal@10\.0\.0\.13$/m);
    const grants = stepOf(two.afterStart, "database-and-grants");
    assert.match(grants.run, new RegExp(`^${DB_USERS} record && mysql `));
    assert.equal(grants.check, `${DB_USERS} check-granted`);
    assert.ok(grants.watch.includes(DB_USERS));
    const drop = stepOf(two.afterBalancers, "drop-removed-db-users");
    assert.equal(drop.run, `${DB_USERS} reconcile`);
    assert.equal(drop.check, `${DB_USERS} check-reconciled`);
    assert.deepEqual(drop.watch, [DB_USERS]);
    // Nothing is dropped before the balancers have taken the change.
    assert.ok(!two.afterStart.some((s) => s.run.includes("reconcile")));
  });

  it("against MariaDB: 3 -> 2 drops only lb3's user (root, another user at lb3's address, a user of the operator's stay), idempotent; 2 -> 3 makes it again; a forged ledger line never reaches SQL", function () {
    requireDocker();
    ensureValidatorImage((s) => console.log(`      ${s}`));
    const three = data(3);
    const two = data(2);
    const sh = (name: string, cmd: string): string => `echo "### ${name}"; bash -ec ${q(cmd)}; echo "### ${name} exit $?"`;
    const swap = (root: string): string => `cp -a ${root}/. /`;
    const users = `mysql --protocol=socket -N -e "SELECT CONCAT(User, '@', Host) FROM mysql.user ORDER BY User, Host" | tr '\\n' ' '`;
    const script = [
      "exec 2>&1",
      "mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld",
      "mariadbd --user=mysql --skip-networking --socket=/run/mysqld/mysqld.sock >/tmp/mariadbd.log 2>&1 &",
      "for i in $(seq 1 60); do mariadb-admin --protocol=socket ping >/dev/null 2>&1 && break; sleep 0.5; done",
      "mkdir -p /etc/drupal-cluster",
      swap("/tmp/three"),
      sh("grants 3", stepOf(three.afterStart, "database-and-grants").run),
      sh("drop after 3", stepOf(three.afterBalancers, "drop-removed-db-users").run),
      sh("checked 3", `${DB_USERS} check-granted && ${DB_USERS} check-reconciled`),
      // Users the program did not make: the operator's at lb3's address and elsewhere.
      `mysql --protocol=socket -e "CREATE USER 'other'@'10.0.0.13'; CREATE USER 'drupal'@'10.0.0.99'; GRANT SELECT ON drupal.* TO 'drupal'@'10.0.0.99'"`,
      `echo "### users 3: $(${users})"`,
      swap("/tmp/two"),
      sh("grants 2", stepOf(two.afterStart, "database-and-grants").run),
      sh("refresh before the drop", `${DB_USERS} check-reconciled`),
      sh("drop 2", stepOf(two.afterBalancers, "drop-removed-db-users").run),
      sh("drop 2 again", stepOf(two.afterBalancers, "drop-removed-db-users").run),
      sh("checked 2", `${DB_USERS} check-granted && ${DB_USERS} check-reconciled`),
      `echo "### users 2: $(${users})"`,
      `mysql --protocol=socket -e "CREATE USER 'drupal'@'10.0.0.13'"`,
      sh("refresh with lb3's user made again by hand", `${DB_USERS} check-reconciled`),
      `mysql --protocol=socket -e "DROP USER 'drupal'@'10.0.0.13'"`,
      `printf '%s\\n' "x'@'y'; DROP DATABASE drupal; --@10.0.0.50" root@localhost >> /var/lib/drupal-cluster/mariadb-users`,
      sh("drop with a forged ledger line", stepOf(two.afterBalancers, "drop-removed-db-users").run),
      `echo "### databases: $(mysql --protocol=socket -N -e 'SHOW DATABASES' | tr '\\n' ' ')"`,
      swap("/tmp/three"),
      sh("grants 3 again", stepOf(three.afterStart, "database-and-grants").run),
      sh("drop after 3 again", stepOf(three.afterBalancers, "drop-removed-db-users").run),
      sh("checked 3 again", `${DB_USERS} check-granted && ${DB_USERS} check-reconciled`),
      `echo "### users 3 again: $(${users})"`,
    ].join("\n");
    const files = [...under("/tmp/three", three.files), ...under("/tmp/two", two.files)];
    const run = validateInContainer(files, script);
    const out = run.output;
    const exit = (name: string): string | undefined => new RegExp(`### ${name.replace(/[()]/g, "\\$&")} exit (\\d+)`).exec(out)?.[1];
    const section = (name: string): string => {
      const start = out.indexOf(`### ${name}\n`);
      return out.slice(start, out.indexOf(`### ${name} exit`, start));
    };
    const listed = (name: string): string[] => (new RegExp(`### ${name}: (.*)`).exec(out)?.[1] ?? "").trim().split(/\s+/);
    for (const ok of [
      "grants 3",
      "drop after 3",
      "checked 3",
      "grants 2",
      "drop 2",
      "drop 2 again",
      "checked 2",
      "drop with a forged ledger line",
      "grants 3 again",
      "drop after 3 again",
      "checked 3 again",
    ]) {
      assert.equal(exit(ok), "0", `${ok}:\n${section(ok)}\n--- whole run:\n${out.slice(-3000)}`);
    }
    assert.equal(exit("refresh before the drop"), "1", "a refresh before the drop did not see lb3's user still there");
    assert.equal(exit("refresh with lb3's user made again by hand"), "1", "a refresh did not see a removed web server's user made again");
    assert.doesNotMatch(section("drop after 3"), /dropped/);
    assert.match(section("drop 2"), /dropped database user drupal@10\.0\.0\.13: no web server there any more/);
    assert.doesNotMatch(section("drop 2 again"), /dropped/);
    assert.match(section("drop with a forged ledger line"), /ledger line not used: x'@'y';/);
    assert.ok(listed("databases").includes("drupal"), `the forged line reached SQL: ${listed("databases").join(" ")}`);
    assert.match(section("drop with a forged ledger line"), /ledger line not used: root@localhost/);
    const three1 = listed("users 3");
    for (const u of ["drupal@10.0.0.11", "drupal@10.0.0.12", "drupal@10.0.0.13", "other@10.0.0.13", "drupal@10.0.0.99", "root@localhost"])
      assert.ok(three1.includes(u), `${u} missing: ${three1.join(" ")}`);
    const after = listed("users 2");
    assert.ok(!after.includes("drupal@10.0.0.13"), `lb3's user is still there: ${after.join(" ")}`);
    for (const u of ["drupal@10.0.0.11", "drupal@10.0.0.12", "other@10.0.0.13", "drupal@10.0.0.99", "root@localhost"])
      assert.ok(after.includes(u), `${u} was dropped: ${after.join(" ")}`);
    assert.ok(listed("users 3 again").includes("drupal@10.0.0.13"), "scaling out again did not make lb3's user again");
    assert.ok(listed("users 3 again").includes("root@localhost"), "root was dropped");
  });
});
