import assert from "node:assert/strict";
import * as crypto from "node:crypto";
import fc from "fast-check";
import { ConfigError } from "../../infra/config/errors";
import { ClusterModel } from "../../infra/model/types";
import { PROXY_NODE_BIN } from "../../infra/payload/balancer";
import { buildPayloads } from "../../infra/payload/index";
import { HostPayload } from "../../infra/payload/types";
import { ARTIFACTS, dockerValues, model, SECRETS, sshValues, Values } from "../support/cluster-configs";
import { checkedFiles, ensureValidatorImage, requireDocker, validateTrees } from "../support/validator";

/**
 * Issue 15: every string setting, given hostile values, is either refused with its
 * key named, or rendered so that the tree still passes the real validators and has
 * the same structure (directives, statements, commands) as the render of the valid
 * value it replaced. Structure is compared without the container; the accepted
 * cases then go through apache2ctl/php/sh/mariadb in one batch.
 */

const SEED = 1515;
const PER_KEY = 6;

/** Fragments that change the meaning of a value in one syntax or another. */
const FRAGMENTS = [
  "'",
  '"',
  "\n",
  "\r\n",
  "$(touch /tmp/x)",
  "`touch /tmp/x`",
  ";touch /tmp/x;",
  "%{HTTP_HOST}",
  "]",
  "\\",
  "${APACHE_LOG_DIR}",
  "?>",
  "#",
  " ",
  "\nAlias /leak /etc",
  "' IDENTIFIED BY 'x'; CREATE USER 'evil'@'%'; -- ",
  "\nskip-grant-tables",
  " *(rw,no_root_squash)",
  "$1",
  "é",
  "\u2028",
  "日本",
  "\u0000",
  "`",
  ",",
  ":",
  "|",
  "&",
  "<",
  ">",
  "*",
  "~",
  "-x",
];

function hostile(valid: string): fc.Arbitrary<string> {
  const frag = fc.constantFrom(...FRAGMENTS);
  return fc.oneof(
    frag.map((f) => valid + f),
    frag.map((f) => f + valid),
    fc.tuple(frag, frag, fc.nat(valid.length)).map(([a, b, k]) => valid.slice(0, k) + a + valid.slice(k) + b),
    fc.constantFrom(valid + "a".repeat(5000), valid + "\n".repeat(3) + valid),
    fc.string({ unit: "binary", minLength: 1, maxLength: 40 }),
  );
}

interface Base {
  label: string;
  values: Values;
  keys: string[];
}

function drupalComposer(): Values {
  const v = sshValues({ app: "drupal" });
  v.drupal = { source: "composer", version: "^10" };
  return v;
}

function withLocalHosts(): Values {
  const v = sshValues();
  v.localHosts = { network: "drupal-cluster-test", subnet: "10.0.0.0/24", image: "drupal-cluster/debian:bookworm", filesVolume: "files" };
  return v;
}

/** Every string setting of the stack config, on a base where it is used. */
const BASES: Base[] = [
  {
    label: "ssh, probe, apache, nfs",
    values: sshValues({ share: "nfs" }),
    keys: [
      "serverName",
      "trustedHostPatterns[0]",
      "balancer.stickysession",
      "balancer.stickysessionsep",
      "balancer.cookieValuePrefix",
      "balancer.cookieDomain",
      "balancer.name",
      "balancer.managerAllow[0]",
      "balancer.address",
      "balancer.url",
      "balancer.managerUrl",
      "balancer.logLevel",
      "balancer.lbmethod",
      "balancer.engine",
      "balancer.ssh.host",
      "balancer.ssh.user",
      "web[0].name",
      "web[0].route",
      "web[0].address",
      "web[0].url",
      "web[0].ssh.host",
      "web[0].ssh.user",
      "data.address",
      "data.database",
      "data.user",
      "data.ssh.host",
      "data.ssh.user",
      "data.ssh.hostKey",
      "web[0].ssh.hostKey",
      "files.publicPath",
      "files.share",
      "app",
      "php.memoryLimit",
      "php.uploadMaxFilesize",
      "php.postMaxSize",
    ],
  },
  { label: "ssh, drupal tarball", values: sshValues({ app: "drupal" }), keys: ["drupal.url", "serverName", "trustedHostPatterns[0]", "balancer.cookieDomain"] },
  { label: "ssh, drupal composer", values: drupalComposer(), keys: ["drupal.version", "drupal.source"] },
  {
    label: "ssh, proxy-node",
    values: sshValues({ engine: "proxy-node" }),
    keys: ["balancer.stickysession", "balancer.name", "balancer.managerAllow[0]", "web[0].route"],
  },
  { label: "docker", values: dockerValues(), keys: ["docker.image", "docker.network", "docker.subnet", "docker.bindAddress", "target"] },
  { label: "ssh with local hosts", values: withLocalHosts(), keys: ["localHosts.network", "localHosts.subnet", "localHosts.image", "localHosts.filesVolume"] },
];

/** The table, one case per row (the value as the review found it accepted). */
const TABLE: Array<{ key: string; value: string; base: number }> = [
  {
    key: "web[0].address",
    value: "10.0.0.11' IDENTIFIED BY 'x'; CREATE USER 'evil'@'%' IDENTIFIED BY 'x'; GRANT ALL ON *.* TO 'evil'@'%' WITH GRANT OPTION; -- ",
    base: 0,
  },
  { key: "web[0].address", value: "10.0.0.11\n/ *(rw,no_root_squash,insecure)", base: 0 },
  { key: "data.address", value: "10.0.0.10\nskip-grant-tables\nbind-address = 0.0.0.0", base: 0 },
  { key: "data.address", value: "10.0.0.10$(touch /tmp/x)", base: 0 },
  { key: "drupal.url", value: "https://x/';touch${IFS}/tmp/x;'.tar.gz", base: 1 },
  { key: "drupal.version", value: "^10' ; touch /tmp/x ; '", base: 2 },
  { key: "files.publicPath", value: "/srv/f;touch /tmp/x", base: 0 },
  { key: "serverName", value: "cluster.example.org\nAlias /leak /etc", base: 0 },
  { key: "balancer.cookieValuePrefix", value: "balancer]\nAlias /x /etc.", base: 0 },
  { key: "balancer.cookieValuePrefix", value: "%{HTTP_HOST}.", base: 0 },
  { key: "balancer.stickysession", value: "SID$1", base: 0 },
  { key: "balancer.managerAllow[0]", value: "fe80::1%eth0", base: 0 },
  { key: "trustedHostPatterns[0]", value: "[^]x", base: 1 },
];

function setPath(values: Values, key: string, value: string): Values {
  const out = structuredClone(values);
  const parts = key.split(".").flatMap((p) => p.split(/\[(\d+)\]/).filter((x) => x !== ""));
  let at: Record<string, unknown> | unknown[] = out;
  parts.forEach((p, i) => {
    const k: string | number = /^\d+$/.test(p) ? Number(p) : p;
    const obj = at as Record<string | number, unknown>;
    if (i === parts.length - 1) obj[k] = value;
    else {
      if (obj[k] === undefined || obj[k] === null) obj[k] = /^\d+$/.test(parts[i + 1]) ? [] : {};
      at = obj[k] as Record<string, unknown>;
    }
  });
  return out;
}

function getPath(values: Values, key: string): string | undefined {
  const parts = key.split(".").flatMap((p) => p.split(/\[(\d+)\]/).filter((x) => x !== ""));
  let at: unknown = values;
  for (const p of parts) at = (at as Record<string, unknown> | undefined)?.[p];
  return typeof at === "string" ? at : undefined;
}

// ---- structure, without the container --------------------------------------------

/** Apache: directive names with their argument counts, as httpd's ap_getword_conf splits them. */
function apacheShape(text: string): string[] {
  const joined = text.replace(/([^\\])\\\r?\n/g, "$1 ");
  const out: string[] = [];
  for (const raw of joined.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    let rest = line;
    const words: string[] = [];
    while (rest.length > 0) {
      rest = rest.replace(/^\s+/, "");
      if (rest === "") break;
      const quote = rest[0];
      if (quote === '"' || quote === "'") {
        let i = 1;
        while (i < rest.length && rest[i] !== quote) i += rest[i] === "\\" && (rest[i + 1] === quote || rest[i + 1] === "\\") ? 2 : 1;
        words.push(rest.slice(0, i + 1));
        rest = rest.slice(i + 1);
      } else {
        const m = /^\S+/.exec(rest)!;
        words.push(m[0]);
        rest = rest.slice(m[0].length);
      }
    }
    // Expansions httpd or mod_rewrite perform: none may come from a value.
    const expansions = (line.match(/\$\{|%\{|\$\d|%\d/g) ?? []).length;
    out.push(`${words[0]}/${words.length}/${expansions}`);
  }
  return out;
}

/** SQL: statements' first two words, split outside quotes, backticks and comments. */
function sqlShape(text: string): string[] {
  const out: string[] = [];
  let cur = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "-" && text[i + 1] === "-" && /\s/.test(text[i + 2] ?? " ")) {
      while (i < text.length && text[i] !== "\n") i++;
      continue;
    }
    if (c === "#") {
      while (i < text.length && text[i] !== "\n") i++;
      continue;
    }
    if (c === "'" || c === "`" || c === '"') {
      let j = i + 1;
      for (; j < text.length; j++) {
        if (c !== "`" && text[j] === "\\") j++;
        else if (text[j] === c && text[j + 1] === c) j++;
        else if (text[j] === c) break;
      }
      cur += "Q";
      i = j;
      continue;
    }
    if (c === ";") {
      out.push(cur.trim().split(/\s+/).slice(0, 2).join(" "));
      cur = "";
      continue;
    }
    cur += c;
  }
  if (cur.trim() !== "") out.push(`unterminated: ${cur.trim().slice(0, 30)}`);
  return out;
}

/** Shell: words collapse to W (quoted or not); operators, expansions and line structure stay. */
function shellShape(text: string): string {
  let out = "";
  let inWord = false;
  const word = (): void => {
    if (!inWord) out += "W";
    inWord = true;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "#" && !inWord) {
      while (i < text.length && text[i] !== "\n") i++;
      i--;
      continue;
    }
    if (c === "'") {
      word();
      i = text.indexOf("'", i + 1);
      if (i < 0) return `${out}<unterminated '>`;
      continue;
    }
    if (c === "\\") {
      word();
      i++;
      continue;
    }
    if (c === '"') {
      word();
      let j = i + 1;
      for (; j < text.length && text[j] !== '"'; j++) {
        if (text[j] === "\\") j++;
        else if (text[j] === "$" || text[j] === "`") out += `<${text[j]}${text[j + 1] === "(" ? "(" : ""}>`;
      }
      if (j >= text.length) return `${out}<unterminated ">`;
      i = j;
      continue;
    }
    if (c === "$" || c === "`") {
      word();
      out += `<${c}${text[i + 1] === "(" ? "(" : ""}>`;
      continue;
    }
    if (/\s/.test(c)) {
      inWord = false;
      if (c === "\n") out += "\n";
      continue;
    }
    if (/[;&|<>(){}]/.test(c)) {
      inWord = false;
      out += c;
      continue;
    }
    word();
  }
  return out;
}

/** PHP: the code with string literals and comments taken out. */
function phpShape(text: string): string {
  return text
    .replace(/'(?:[^'\\]|\\.)*'/g, "S")
    .replace(/"(?:[^"\\]|\\.)*"/g, "S")
    .replace(/\/\/[^\n]*/g, "")
    .replace(/\s+/g, " ");
}

function jsonShape(text: string): string {
  const keys = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(keys) : v && typeof v === "object" ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, keys(x)])) : typeof v;
  try {
    return JSON.stringify(keys(JSON.parse(text)));
  } catch (e) {
    return `invalid JSON: ${String(e)}`;
  }
}

/** Option files, exports, units: one entry per non-comment line, with its name or its field count. */
function lineShape(text: string): string[] {
  return text
    .split("\n")
    .filter((l) => l.trim() !== "" && !l.trim().startsWith("#"))
    .map((l) => (l.includes("=") ? l.split("=")[0].trim() : `${l.trim().split(/\s+/).length} fields`));
}

function fileShape(path: string, content: string): unknown {
  if (path.startsWith("/etc/apache2/")) return apacheShape(content);
  if (path.endsWith(".sql")) return sqlShape(content);
  if (path.endsWith(".php")) return phpShape(content);
  if (path.endsWith(".json")) return jsonShape(content);
  if (content.startsWith("#!/bin/sh") || content.startsWith("#!/bin/bash")) return shellShape(content);
  return lineShape(content);
}

function payloadShape(p: HostPayload): Record<string, unknown> {
  const shape: Record<string, unknown> = {};
  for (const f of p.files) if (f.path !== PROXY_NODE_BIN) shape[`file ${f.path}`] = fileShape(f.path, f.content);
  for (const s of [...p.prepare, ...p.configure, ...p.afterStart]) shape[`step ${s.name}`] = shellShape(s.run);
  for (const s of p.services) shape[`service ${s.name}`] = [s.start, s.reload, s.stop].map(shellShape);
  shape.packages = p.packages;
  return shape;
}

// ---- the cases ---------------------------------------------------------------------

interface Case {
  label: string;
  key: string;
  value: string;
  base: Base;
}

type Outcome = { kind: "refused"; message: string } | { kind: "rendered"; model: ClusterModel; payloads: HostPayload[] } | { kind: "wrong"; problem: string };

function outcome(c: Case): Outcome {
  let m: ClusterModel;
  let payloads: HostPayload[];
  try {
    m = model(setPath(c.base.values, c.key, c.value));
    payloads = buildPayloads(m, SECRETS, ARTIFACTS);
  } catch (e) {
    if (!(e instanceof ConfigError)) return { kind: "wrong", problem: `refused without naming a key: ${String(e)}` };
    if (!e.message.includes(c.key)) return { kind: "wrong", problem: `refused, but the error does not name ${c.key}: ${e.message}` };
    return { kind: "refused", message: e.message };
  }
  return { kind: "rendered", model: m, payloads };
}

function cases(): Case[] {
  const out: Case[] = [];
  BASES.forEach((base, b) => {
    for (const key of base.keys) {
      const valid =
        getPath(base.values, key) ??
        (key === "balancer.stickysession"
          ? "BALANCEID"
          : key === "balancer.stickysessionsep"
            ? "."
            : key === "balancer.cookieValuePrefix"
              ? "balancer."
              : key === "balancer.name"
                ? "drupal"
                : key === "data.database" || key === "data.user"
                  ? "drupal"
                  : key === "files.publicPath"
                    ? "/srv/drupal-files"
                    : key === "web[0].route"
                      ? "lb1"
                      : key === "serverName"
                        ? "localhost"
                        : key.startsWith("php.")
                          ? "64M"
                          : "x");
      const values = fc.sample(hostile(valid), { numRuns: PER_KEY, seed: SEED + b * 1000 + out.length });
      values.forEach((value, i) => out.push({ label: `${base.label}: ${key} #${i}`, key, value, base }));
    }
  });
  TABLE.forEach((t, i) => out.push({ label: `issue table row ${i + 1}: ${t.key}`, key: t.key, value: t.value, base: BASES[t.base] }));
  return out;
}

/** The validator's output without the checks that passed. */
function problems(output: string): string {
  const lines = output.split("\n");
  return lines.filter((l, i) => l !== "### ok" && !(l.startsWith("### ") && lines[i + 1] === "### ok") && !/^(module|site): /.test(l)).join("\n");
}

describe("hostile values in every string setting: refused with the key named, or rendered harmlessly", function () {
  const all = cases();
  const accepted: Array<{ c: Case; model: ClusterModel; payloads: HostPayload[] }> = [];
  const baselines = new Map<Base, HostPayload[]>(BASES.map((b) => [b, buildPayloads(model(b.values), SECRETS, ARTIFACTS)]));

  describe(`structure (${all.length} cases, no container)`, () => {
    for (const c of all) {
      it(`${c.label} = ${JSON.stringify(c.value).slice(0, 70)}`, () => {
        const o = outcome(c);
        assert.ok(o.kind !== "wrong", o.kind === "wrong" ? o.problem : "");
        if (o.kind !== "rendered") return;
        const base = baselines.get(c.base)!;
        const hostNames = (ps: HostPayload[]): string[] => ps.map((p) => p.host.role);
        if (
          hostNames(o.payloads).join() === hostNames(base).join() &&
          o.model.balancer.engine === model(c.base.values).balancer.engine &&
          o.model.app.kind === model(c.base.values).app.kind &&
          o.model.files.share === model(c.base.values).files.share &&
          o.model.target === model(c.base.values).target
        ) {
          o.payloads.forEach((p, i) => {
            assert.deepEqual(payloadShape(p), payloadShape(base[i]), `${p.host.name}: the value changed the structure of what lands on the host`);
          });
        }
        accepted.push({ c, model: o.model, payloads: o.payloads });
      });
    }
  });

  describe("the accepted cases through the real validators (one container)", () => {
    it("apache2ctl -t, php -l, sh -n / bash -n, mariadb accept every rendered tree", function () {
      this.timeout(10 * 60_000);
      requireDocker();
      ensureValidatorImage((s) => console.log(`      ${s}`));
      // Only trees that differ from every other: most settings touch one or two hosts.
      const seen = new Set<string>();
      const trees = accepted.flatMap(({ c, model: m, payloads }) =>
        payloads.flatMap((p) => {
          const files = checkedFiles(m, p);
          const key = crypto
            .createHash("sha256")
            .update(JSON.stringify([files, p.prepare, p.configure, p.afterStart, p.services]))
            .digest("hex");
          if (seen.has(key)) return [];
          seen.add(key);
          return [{ label: `${c.label} (${p.host.name})`, model: m, payload: p, files }];
        }),
      );
      const t0 = Date.now();
      const results = validateTrees(trees);
      const keys = [...new Set(accepted.map((a) => a.c.key))].join(", ");
      console.log(`      accepted hostile values for: ${keys || "none"}`);
      console.log(`      ${accepted.length} accepted cases, ${trees.length} distinct host trees validated in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      const failed = results.filter((r) => !r.ok);
      assert.deepEqual(
        failed.map((f) => `${f.label}:\n${problems(f.output)}`),
        [],
      );
    });
  });
});
