// The package as `npm pack` makes it, installed into an empty folder with
// nothing of this repository around it and no network: its bin alone must
// answer --help and --version and balance a sticky request. And its build:
// one file, whatever an earlier build left in dist/.
import { strict as assert } from "node:assert";
import { execFileSync, spawn, spawnSync, ChildProcess } from "node:child_process";
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { startMember, request, closeAll } from "../helpers";
import { builtBin, PACKAGE } from "../bin";

const pkg = JSON.parse(readFileSync(join(PACKAGE, "package.json"), "utf8")) as { name: string; version: string; bin: Record<string, string> };
// The installed bin finds node through its shebang (/usr/bin/env -S node ...).
const env = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? "/usr/bin:/bin"}` };

describe("package: npm pack, installed on its own", function () {
  this.timeout(180_000);
  let dir = "";
  let app = "";
  let bin = "";
  let child: ChildProcess | null = null;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "proxy-node-pack-"));
    // prepack builds (type-check and bundle), as for a publish.
    execFileSync("npm", ["pack", "--silent", "--pack-destination", dir], { cwd: PACKAGE, env, stdio: ["ignore", "ignore", "inherit"] });
    const tarballs = readdirSync(dir).filter((f) => f.endsWith(".tgz"));
    assert.deepEqual(tarballs, [`${pkg.name}-${pkg.version}.tgz`]);
    app = join(dir, "app");
    mkdirSync(app);
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "proxy-node-pack-check", version: "1.0.0", private: true }));
    execFileSync("npm", ["install", "--offline", "--no-audit", "--no-fund", "--silent", join(dir, tarballs[0])], {
      cwd: app,
      env,
      stdio: ["ignore", "ignore", "inherit"],
    });
    bin = join(app, "node_modules", ".bin", "proxy-node");
  });

  afterEach(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const c = child;
      c.kill("SIGTERM");
      await new Promise((r) => c.once("exit", r));
    }
    child = null;
    await closeAll();
  });

  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("holds the bin, package.json and README only: no sources, no tests, no dependencies", () => {
    const listed = execFileSync("tar", ["-tzf", join(dir, `${pkg.name}-${pkg.version}.tgz`)], { encoding: "utf8" })
      .trim()
      .split("\n")
      .sort();
    assert.deepEqual(listed, ["package/README.md", `package/${pkg.bin["proxy-node"]}`, "package/package.json"].sort());
    const installed = JSON.parse(readFileSync(join(app, "node_modules", "proxy-node", "package.json"), "utf8")) as Record<string, unknown>;
    assert.equal(installed.dependencies, undefined);
    assert.deepEqual(
      readdirSync(join(app, "node_modules")).filter((n) => !n.startsWith(".")),
      ["proxy-node"],
    );
    // The installed copy, not the repository's.
    assert.ok(realpathSync(bin).startsWith(realpathSync(app)), realpathSync(bin));
  });

  it("--help and --version (the version is package.json's)", () => {
    const help = spawnSync(bin, ["--help"], { cwd: app, env, encoding: "utf8", timeout: 20_000 });
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, new RegExp(`^proxy-node ${pkg.version.replace(/\./g, "\\.")}: `));
    assert.match(help.stdout, /--config <file>/);
    const version = spawnSync(bin, ["--version"], { cwd: app, env, encoding: "utf8", timeout: 20_000 });
    assert.equal(version.status, 0, version.stderr);
    assert.equal(version.stdout, `${pkg.version}\n`);
  });

  it("balances from a config file: a sticky request reaches the member its cookie names", async () => {
    const lb1 = await startMember("lb1");
    const lb2 = await startMember("lb2");
    const config = join(dir, "config.json");
    writeFileSync(
      config,
      JSON.stringify({
        mode: "serve",
        listen: { host: "127.0.0.1", port: 0 },
        log: { requests: false },
        balancer: {
          members: [
            { url: lb1.url, route: "lb1" },
            { url: lb2.url, route: "lb2" },
          ],
        },
      }),
    );
    const c = spawn(bin, ["--config", config], { cwd: app, env, stdio: ["ignore", "ignore", "pipe"] });
    child = c;
    let err = "";
    const port = await new Promise<number>((resolve, reject) => {
      c.stderr?.on("data", (d: Buffer) => {
        err += d.toString();
        const m = /"listen":"127\.0\.0\.1:(\d+)"/.exec(err);
        if (m) resolve(Number(m[1]));
      });
      c.on("exit", (code) => reject(new Error(`proxy-node exited ${code}: ${err}`)));
    });
    // lb2 is the second member: byrequests would send a cookie-less first request to lb1.
    const r = await request(port, { path: "/sticky", headers: { Cookie: "BALANCEID=balancer.lb2" } });
    assert.equal(r.status, 200);
    assert.equal(r.body, "lb2");
    assert.deepEqual(
      lb2.seen.map((s) => s.url),
      ["/sticky"],
    );
    assert.equal(lb1.seen.length, 0);
  });
});

describe("package: the build", () => {
  it("dist/ holds the bin only (an earlier build's per-module files go), executable, with node's flags in its shebang", () => {
    const dist = dirname(join(PACKAGE, pkg.bin["proxy-node"]));
    mkdirSync(join(dist, "proxy"), { recursive: true });
    writeFileSync(join(dist, "cli.js"), "// a former build\n");
    writeFileSync(join(dist, "proxy", "parse.js"), "// a former build\n");
    execFileSync(process.execPath, [join(PACKAGE, "scripts", "build.js")], { stdio: ["ignore", "ignore", "inherit"] });
    assert.deepEqual(readdirSync(dist), [pkg.bin["proxy-node"].split("/").pop()]);
    const bin = join(PACKAGE, pkg.bin["proxy-node"]);
    assert.equal(statSync(bin).mode & 0o111, 0o111);
    assert.equal(readFileSync(bin, "utf8").split("\n")[0], "#!/usr/bin/env -S node --max-semi-space-size=4");
    assert.equal(builtBin(), bin);
  });

  it("builds the same bytes from any working directory (the balancer restarts for a new bin, never for the same code)", () => {
    const bin = join(PACKAGE, pkg.bin["proxy-node"]);
    const fromEach = [PACKAGE, dirname(PACKAGE), tmpdir()].map((cwd) => {
      execFileSync(process.execPath, [join(PACKAGE, "scripts", "build.js")], { cwd, stdio: ["ignore", "ignore", "inherit"] });
      return readFileSync(bin, "utf8");
    });
    assert.equal(fromEach[1], fromEach[0], "a build from the repository root differs from one in the package");
    assert.equal(fromEach[2], fromEach[0], "a build from elsewhere differs from one in the package");
  });
});
