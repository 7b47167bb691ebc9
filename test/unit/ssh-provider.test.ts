/**
 * The ssh target's provider plugin, without a host: what its diff decides,
 * how secrets keep their wrappers, how a stack of the former dynamic resources
 * is rewritten, and the host key rules of the config.
 */
import * as assert from "node:assert/strict";
import { fileResource, contentHash } from "../../infra/targets/ssh/provider/file-resource";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { commandResource, updateScript, withMarker } from "../../infra/targets/ssh/provider/command-resource";
import { commandProps } from "../../infra/targets/ssh/provider/inputs";
import { markerFile } from "../../infra/targets/ssh/markers";
import { DeliveryProvider } from "../../infra/targets/ssh/provider/provider";
import { reveal, secret } from "../../infra/targets/ssh/provider/secret-values";
import { fingerprint, parseHostKey } from "../../infra/targets/ssh/remote-exec";
import { migrateDeployment } from "../../scripts/migrate-state";
import { validateConfig } from "../../infra/config/validate";
import { exampleHostKey, PROJECT, sshValues } from "../support/cluster-configs";

const conn = { host: "203.0.113.11", port: 22, user: "root", privateKey: "KEY", hostKey: exampleHostKey(11) };
const file = { connection: conn, path: "/etc/x.conf", content: "a = 1\n", mode: "0644", owner: "root:root" };
const state = { ...file, hash: contentHash(file.content), found: "" };
const step = {
  connection: conn,
  create: "apt-get install -y x",
  update: "service x reload",
  delete: "",
  check: "service x status",
  triggers: ["t1"],
  restart: "",
  restartTriggers: [] as string[],
  applied: true,
  found: "",
};

describe("ssh provider plugin: decisions without a host", () => {
  it("a file whose content, mode and owner match its state is unchanged; each one changing is a change", () => {
    assert.equal(fileResource.diff(state, file, "f").changes, false);
    assert.equal(fileResource.diff(state, { ...file, content: "a = 2\n" }, "f").changes, true);
    assert.equal(fileResource.diff(state, { ...file, mode: "644" }, "f").changes, false, "0644 and 644 are one mode");
    assert.equal(fileResource.diff(state, { ...file, mode: "0600" }, "f").changes, true);
    assert.equal(fileResource.diff(state, { ...file, owner: "root:www-data" }, "f").changes, true);
  });

  it("a file edited on the host (read gave another hash) is a change, repaired by the update", () => {
    assert.equal(fileResource.diff({ ...state, hash: contentHash("edited by hand") }, file, "f").changes, true);
  });

  it("another endpoint (host, port or user) replaces the file and the step; another path replaces the file", () => {
    for (const c of [
      { ...conn, host: "203.0.113.99" },
      { ...conn, port: 2222 },
      { ...conn, user: "admin" },
    ]) {
      assert.deepEqual(fileResource.diff(state, { ...file, connection: c }, "f").replaces, ["connection"]);
      assert.deepEqual(commandResource.diff(step, { ...step, connection: c }, "s").replaces, ["connection"]);
    }
    assert.deepEqual(fileResource.diff(state, { ...file, path: "/etc/y.conf" }, "f").replaces, ["path"]);
  });

  it("a step read as not applied (rebuilt host, stopped service) is a change; an applied one with the same scripts is not", () => {
    assert.equal(commandResource.diff(step, step, "s").changes, false);
    assert.equal(commandResource.diff({ ...step, applied: false, found: "not applied on this host" }, step, "s").changes, true);
    assert.equal(commandResource.diff(step, { ...step, triggers: ["t2"] }, "s").changes, true);
  });

  it("a running service whose start or stop script alone changed is left running; a changed trigger reloads it, a step without reload runs again", () => {
    const service = { ...step, create: "service x start", update: "service x restart", delete: "service x stop" };
    assert.equal(updateScript(service, { ...service, create: "systemctl enable x; service x start" }), null);
    assert.equal(updateScript(service, { ...service, delete: "systemctl disable x; service x stop" }), null);
    assert.equal(updateScript(service, { ...service, create: "service x start --new", delete: "systemctl disable x; service x stop" }), null);
    assert.equal(updateScript(service, { ...service, create: "systemctl enable x; service x start", triggers: ["t2"] }), "service x restart");
    assert.equal(updateScript(service, { ...service, update: "service x reload" }), "service x reload");
    const plainStep = { ...step, update: "" };
    assert.equal(updateScript(plainStep, { ...plainStep, create: "apt-get install -y x y" }), "apt-get install -y x y");
  });

  it("a service with a restart script restarts when a restart-watched file changed, reloads when only a reload-watched one did", () => {
    const apache = {
      ...step,
      create: "service a start",
      update: "service a reload",
      restart: "service a restart",
      triggers: ["vhost1"],
      restartTriggers: ["ini1"],
    };
    assert.equal(updateScript(apache, { ...apache, triggers: ["vhost2"] }), "service a reload");
    assert.equal(updateScript(apache, { ...apache, restartTriggers: ["ini2"] }), "service a restart");
    // Both changed: the restart takes the reload's change too; one is enough.
    assert.equal(updateScript(apache, { ...apache, triggers: ["vhost2"], restartTriggers: ["ini2"] }), "service a restart");
    // A reworded restart script alone restarts nothing, like a reworded start or stop.
    assert.equal(updateScript(apache, { ...apache, restart: "systemctl restart a" }), null);
    assert.equal(commandResource.diff(apache, { ...apache, restartTriggers: ["ini2"] }, "s").changes, true);
  });

  it("a service state written before restarts existed restarts once when its first restart-watched file arrives, and is otherwise unchanged", () => {
    const old = commandProps({ ...step, restart: undefined, restartTriggers: undefined }, "s");
    assert.deepEqual([old.restart, old.restartTriggers], ["", []]);
    assert.equal(commandResource.diff(old, step, "s").changes, false, "a service without a restart script changed by the upgrade alone");
    assert.equal(updateScript(old, { ...step, restart: "service x restart", restartTriggers: ["ini1"] }), "service x restart");
  });

  it("a step whose script fails in an && chain is not marked applied (the marker lines never run)", () => {
    const name = `unit-${process.pid}-${Date.now()}`;
    const r = spawnSync("bash", ["-ec", withMarker("false && true", `urn:pulumi:s::p::drupal-cluster:ssh:RemoteCommand::${name}`, "id-1")], {
      encoding: "utf8",
    });
    assert.notEqual(r.status, 0, "the step's failure did not fail the script");
    assert.ok(!fs.existsSync(markerFile(name)), "the failed step was marked applied");
  });

  it("another endpoint is removed from the old one first: it may be the same machine under another name", () => {
    assert.equal(fileResource.diff(state, { ...file, connection: { ...conn, host: "web1.example.org" } }, "f").deleteBeforeReplace, true);
    assert.equal(commandResource.diff(step, { ...step, connection: { ...conn, port: 2222 } }, "s").deleteBeforeReplace, true);
    assert.equal(fileResource.diff(state, { ...file, path: "/etc/y.conf" }, "f").deleteBeforeReplace, false);
  });

  it("a connection without a host key is refused before any host is contacted", async () => {
    const { hostKey: _none, ...bare } = conn;
    await assert.rejects(fileResource.create({ ...file, connection: bare }, "f"), /no host key for root@203\.0\.113\.11:22/);
  });

  it("a new host key is a change (so state gets it), not a replacement", () => {
    const d = fileResource.diff(state, { ...file, connection: { ...conn, hostKey: exampleHostKey(12) } }, "f");
    assert.equal(d.changes, true);
    assert.deepEqual(d.replaces, []);
  });

  it("secret values arrive wrapped and are unwrapped for use; the provider's type dispatch refuses unknown types", async () => {
    assert.deepEqual(reveal({ a: secret("x"), b: [secret(1), 2] }), { a: "x", b: [1, 2] });
    const p = new DeliveryProvider("0.0.0");
    await assert.rejects(p.create("urn:pulumi:s::p::drupal-cluster:ssh:Nope::n", {}), /unknown resource type drupal-cluster:ssh:Nope/);
    const d = await p.diff(
      "id",
      "urn:pulumi:s::p::drupal-cluster:ssh:WebServer$drupal-cluster:ssh:RemoteFile::lb1:/etc/x.conf",
      { ...state, content: secret(file.content) },
      file,
    );
    assert.equal(d.changes, false);
  });

  it("host key fingerprints are OpenSSH's (SHA256, base64 without padding)", () => {
    const { type, blob } = parseHostKey(exampleHostKey(11));
    assert.equal(type, "ssh-ed25519");
    assert.match(fingerprint(blob), /^SHA256:[A-Za-z0-9+/]{43}$/);
  });
});

describe("ssh host keys in the stack config", () => {
  const stack = { project: PROJECT, stack: "unit" };
  it("an ssh host without ssh.hostKey is refused, naming the host and the ssh-keyscan command", () => {
    const v = sshValues();
    delete ((v.web as Array<{ ssh: Record<string, unknown> }>)[1].ssh as Record<string, unknown>).hostKey;
    assert.throws(
      () => validateConfig(stack, v),
      /drupal-cluster:web\[1\]\.ssh\.hostKey: host lb2 \(root@203\.0\.113\.12:22\) has no host key.*ssh-keyscan -p 22 -t ed25519 203\.0\.113\.12/,
    );
  });
  it("a host key that is not an OpenSSH public key line is refused, naming its key", () => {
    const v = sshValues();
    (v.data as { ssh: Record<string, unknown> }).ssh.hostKey = "ssh-ed25519 not-base64!";
    assert.throws(() => validateConfig(stack, v), /drupal-cluster:data\.ssh\.hostKey: host data: not an SSH public key line/);
    (v.data as { ssh: Record<string, unknown> }).ssh.hostKey = `ssh-rsa ${exampleHostKey(10).split(" ")[1]}`;
    assert.throws(() => validateConfig(stack, v), /drupal-cluster:data\.ssh\.hostKey/, "a key whose blob is of another type than its line says");
  });
  it("a trailing comment on the key line is dropped", () => {
    const v = sshValues();
    (v.data as { ssh: Record<string, unknown> }).ssh.hostKey = `${exampleHostKey(10)} root@data`;
    assert.equal(validateConfig(stack, v).data.host.ssh?.hostKey, exampleHostKey(10));
  });
});

describe("migrate: a deployment of the former dynamic resources", () => {
  const old = "pulumi-nodejs:dynamic/drupal-cluster:RemoteCommand";
  const stackUrn = "urn:pulumi:s::drupal-cluster::pulumi:pulumi:Stack::drupal-cluster-s";
  const hostUrn = "urn:pulumi:s::drupal-cluster::drupal-cluster:ssh:WebServer::lb1";
  const stepUrn = `urn:pulumi:s::drupal-cluster::drupal-cluster:ssh:WebServer$${old}::lb1-install`;
  const deployment = {
    version: 3,
    deployment: {
      resources: [
        { urn: stackUrn, type: "pulumi:pulumi:Stack", custom: false },
        { urn: "urn:pulumi:s::drupal-cluster::pulumi:providers:pulumi-nodejs::default", type: "pulumi:providers:pulumi-nodejs", custom: true, id: "u1" },
        { urn: hostUrn, type: "drupal-cluster:ssh:WebServer", custom: false, parent: stackUrn },
        {
          urn: stepUrn,
          type: old,
          custom: true,
          id: "127.0.0.1:2211:1",
          parent: hostUrn,
          provider: "urn:pulumi:s::drupal-cluster::pulumi:providers:pulumi-nodejs::default::u1",
          inputs: { __provider: "exports.handler = require('/home/someone/checkout/infra/...')", create: "x" },
          outputs: { __provider: "exports.handler = ...", create: "x", connection: { host: "127.0.0.1", port: 2211, user: "root" } },
        },
        { urn: "urn:pulumi:s::drupal-cluster::drupal-cluster:ssh:WebServer$x::after", type: "x", dependencies: [stepUrn] },
      ],
    },
  };

  it("moves every dynamic resource to the drupal-cluster provider, drops the stored code and the old provider, and lists the steps to mark", () => {
    const m = migrateDeployment(deployment, "s", "drupal-cluster", new Map([["127.0.0.1:2211", exampleHostKey(11)]]));
    assert.ok(m);
    const res = (m.deployment.deployment as { resources: Array<Record<string, unknown>> }).resources;
    const text = JSON.stringify(res);
    assert.ok(!text.includes("pulumi-nodejs"), text);
    assert.ok(!text.includes("__provider") && !text.includes("/home/someone/checkout"));
    const prov = res.findIndex((r) => r.type === "pulumi:providers:drupal-cluster");
    const stepIdx = res.findIndex((r) => r.type === "drupal-cluster:ssh:RemoteCommand");
    assert.ok(prov >= 0 && prov < stepIdx, "the provider comes before the resources that use it");
    assert.equal(res[stepIdx].urn, "urn:pulumi:s::drupal-cluster::drupal-cluster:ssh:WebServer$drupal-cluster:ssh:RemoteCommand::lb1-install");
    assert.ok(String(res[stepIdx].provider).startsWith(`${String(res[prov].urn)}::`));
    assert.deepEqual(res[res.length - 1].dependencies, [res[stepIdx].urn], "dependencies follow the new URNs");
    assert.deepEqual(m.steps, [{ name: "lb1-install", id: "127.0.0.1:2211:1", host: "127.0.0.1", port: 2211 }]);
    assert.equal(
      (res[stepIdx].outputs as { connection: { hostKey: string } }).connection.hostKey,
      exampleHostKey(11),
      "the host's key from the config joins the migrated connection",
    );
  });

  it("a deployment with nothing of the former resources is left alone", () => {
    assert.equal(
      migrateDeployment({ version: 3, deployment: { resources: [{ urn: stackUrn, type: "pulumi:pulumi:Stack" }] } }, "s", "drupal-cluster", new Map()),
      null,
    );
  });
});
