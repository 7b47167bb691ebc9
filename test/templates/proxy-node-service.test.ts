/**
 * How proxy-node reaches the balancer and starts there: one file (the package's
 * built bin), one start command for the systemd unit and the container supervisor.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { readProxyNodeArtifact } from "../../infra/payload/artifacts";
import { PROXY_NODE_BIN, proxyNodeCommand } from "../../infra/payload/balancer";
import { shellArg } from "../../infra/payload/escape";
import { buildPayloads } from "../../infra/payload/index";
import { HostPayload } from "../../infra/payload/types";
import { ARTIFACTS, dockerValues, model, SECRETS, sshValues, Values } from "../support/cluster-configs";
import { fileOf, host } from "../support/payloads";

const UNIT = "/etc/systemd/system/proxy-node.service";
const CONTROL = "/usr/local/sbin/proxy-node-service";

const CASES: Array<{ label: string; values: Values }> = [
  { label: "ssh, apache (proxy-node as agent)", values: sshValues({ engine: "apache" }) },
  { label: "ssh, proxy-node", values: sshValues({ engine: "proxy-node", webCount: 3 }) },
  { label: "docker, apache", values: dockerValues() },
];

function balancer(values: Values, artifact = ARTIFACTS): HostPayload {
  return host(buildPayloads(model(values), SECRETS, artifact), "balancer");
}

describe("proxy-node on the balancer: one artifact, one start command", () => {
  for (const c of CASES) {
    describe(c.label, () => {
      const b = balancer(c.values);

      it("ships proxy-node as one executable file, the built bin, and nothing else of its code", () => {
        const code = b.files.filter((f) => f.path.startsWith("/opt/proxy-node/"));
        assert.deepEqual(
          code.map((f) => [f.path, f.mode, f.content]),
          [[PROXY_NODE_BIN, "0755", ARTIFACTS]],
        );
      });

      it("the unit and the container supervisor (its start and its config check) run the bin through proxyNodeCommand()", () => {
        const unit = fileOf(b, UNIT).content;
        assert.deepEqual(unit.split("\n").filter((l) => l.startsWith("ExecStart")), [`ExecStart=${proxyNodeCommand()}`]);
        const control = fileOf(b, CONTROL).content;
        assert.deepEqual(control.split("\n").filter((l) => /^CMD=/.test(l)), [`CMD=${shellArg(proxyNodeCommand())}`]);
        assert.match(control, /^ {4}\$CMD --check$/m);
        assert.match(control, /^ {4}\$CMD >>"\$LOG" 2>&1 &$/m);
        assert.ok(proxyNodeCommand().startsWith(`${PROXY_NODE_BIN} `), proxyNodeCommand());
      });

      it("no other file spells out how to run proxy-node (node, its flags, a script path)", () => {
        for (const f of b.files.filter((x) => x.path !== PROXY_NODE_BIN)) {
          assert.doesNotMatch(f.content, /\/usr\/bin\/node|max-semi-space|cli\.js|\/opt\/proxy-node\/dist/, f.path);
          if (f.content.includes("/opt/proxy-node")) assert.ok([UNIT, CONTROL].includes(f.path), `${f.path} names proxy-node's bin`);
        }
      });
    });
  }

  it("an empty artifact is refused: proxy-node is not built", () => {
    assert.throws(() => balancer(sshValues(), ""), /proxy-node is not built: .*run `npm run build`/);
  });
});

describe("readProxyNodeArtifact", () => {
  it("reads the bin that proxy-node's package.json names", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "proxy-node-pkg-"));
    try {
      fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: "proxy-node", bin: { "proxy-node": "out/pn.js" } }));
      fs.mkdirSync(path.join(dir, "out"));
      fs.writeFileSync(path.join(dir, "out", "pn.js"), "#!/usr/bin/env node\n// the bundle\n");
      assert.equal(readProxyNodeArtifact(dir), "#!/usr/bin/env node\n// the bundle\n");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("without a build: says so, names the missing file and `npm run build`", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "proxy-node-pkg-"));
    try {
      fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: "proxy-node", bin: { "proxy-node": "dist/proxy-node.js" } }));
      assert.throws(
        () => readProxyNodeArtifact(dir),
        (e: Error) => e.message === `proxy-node is not built: ${path.join(dir, "dist", "proxy-node.js")} is missing (run \`npm run build\`)`,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
