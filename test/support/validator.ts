/**
 * The validator container: Debian bookworm with the packages our hosts get, so
 * Apache, PHP and MariaDB check the rendered files with their own parsers.
 */
import { spawnSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { PayloadFile } from "../../infra/payload/types";

export const VALIDATOR_IMAGE = "drupal-cluster/validator:bookworm";
export const BASE_IMAGE = "drupal-cluster/debian:bookworm";
export const RECIPE_DIR = path.resolve(__dirname, "..", "validator-image");
const RECIPE_LABEL = "drupal-cluster.recipe";

function docker(args: string[], opts: { input?: Buffer; timeoutMs?: number } = {}): { status: number | null; out: string } {
  const r = spawnSync("docker", args, {
    input: opts.input,
    timeout: opts.timeoutMs ?? 120_000,
    maxBuffer: 64 * 1024 * 1024,
    encoding: "buffer",
  });
  const out = `${r.stdout?.toString() ?? ""}${r.stderr?.toString() ?? ""}${r.error ? `\n${r.error.message}` : ""}`;
  return { status: r.status, out };
}

/** Fails loudly (never skips) when the docker engine is not there. */
export function requireDocker(): void {
  const info = docker(["info", "--format", "{{.ServerVersion}}"], { timeoutMs: 30_000 });
  if (info.status !== 0) {
    throw new Error(
      `the template validation suite needs the docker engine, and \`docker info\` failed:\n${info.out.trim()}\n` +
        "Run scripts/bootstrap (it starts dockerd and builds drupal-cluster/debian:bookworm), then run the tests again.",
    );
  }
}

export function recipeHash(): string {
  const h = crypto.createHash("sha256");
  for (const f of fs.readdirSync(RECIPE_DIR).sort()) h.update(f).update("\0").update(fs.readFileSync(path.join(RECIPE_DIR, f)));
  return h.digest("hex").slice(0, 16);
}

/** Builds the validator image unless an image from the same recipe is already there. */
export function ensureValidatorImage(log: (s: string) => void = () => undefined): void {
  const want = recipeHash();
  const have = docker(["image", "inspect", VALIDATOR_IMAGE, "--format", `{{ index .Config.Labels "${RECIPE_LABEL}" }}`]);
  if (have.status === 0 && have.out.trim() === want) return;
  if (docker(["image", "inspect", BASE_IMAGE]).status !== 0) {
    throw new Error(`the base image ${BASE_IMAGE} is missing: run scripts/bootstrap (it builds it with debootstrap)`);
  }
  log(`building ${VALIDATOR_IMAGE} (recipe ${want}); the first build takes a few minutes`);
  const b = docker(["build", "--label", `${RECIPE_LABEL}=${want}`, "-t", VALIDATOR_IMAGE, RECIPE_DIR], { timeoutMs: 30 * 60_000 });
  if (b.status !== 0) throw new Error(`docker build of ${VALIDATOR_IMAGE} failed:\n${b.out.slice(-6000)}`);
}

export interface ValidationRun {
  status: number | null;
  output: string;
}

/**
 * Lays the files out under their absolute paths over the package defaults in one
 * fresh container (no network), then runs `script` there. The tree travels as a
 * tar stream on stdin, so it works wherever the docker daemon runs.
 */
export function validateInContainer(files: PayloadFile[], script: string): ValidationRun {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "drupal-cluster-validate-"));
  try {
    for (const f of files) {
      const target = path.join(dir, f.path);
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.writeFileSync(target, f.content, { mode: parseInt(f.mode, 8) });
      fs.chmodSync(target, parseInt(f.mode, 8));
    }
    const checkScript = path.join(dir, "tmp", "drupal-cluster-check.sh");
    fs.mkdirSync(path.dirname(checkScript), { recursive: true });
    fs.writeFileSync(checkScript, script);
    const tar = spawnSync("tar", ["-C", dir, "--owner=0", "--group=0", "-cf", "-", "."], { maxBuffer: 256 * 1024 * 1024 });
    if (tar.status !== 0) throw new Error(`tar failed: ${tar.stderr?.toString()}`);
    const r = docker(
      [
        "run", "--rm", "-i", "--network", "none", VALIDATOR_IMAGE,
        "bash", "-c", "tar --no-same-owner -xf - -C / --no-overwrite-dir && exec bash /tmp/drupal-cluster-check.sh",
      ],
      { input: tar.stdout, timeoutMs: 5 * 60_000 },
    );
    return { status: r.status, output: r.out };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Shell quoting for one argument. */
export function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
