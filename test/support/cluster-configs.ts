/**
 * Shared stack configs for the unit, template and validator suites: plain values
 * as they appear under `drupal-cluster:` in a stack file, plus test secrets and a
 * stand-in for proxy-node's built bin.
 */
import assert from "node:assert/strict";
import { ConfigError } from "../../infra/config/errors";
import { validateConfig } from "../../infra/config/validate";
import { ClusterModel } from "../../infra/model/types";
import { ProxyNodeArtifact } from "../../infra/payload/balancer";
import { PayloadSecrets } from "../../infra/payload/types";

export const PROJECT = "drupal-cluster";

export type Values = Record<string, unknown>;

export interface ConfigOptions {
  webCount?: number;
  engine?: "apache" | "proxy-node";
  stickysession?: string;
  app?: "probe" | "drupal";
  share?: "nfs" | "external";
}

/** A well-formed ed25519 public key line, different per `seed` (no host holds its private key). */
export function exampleHostKey(seed: number): string {
  const type = Buffer.from("ssh-ed25519");
  const len = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const key = Buffer.alloc(32, seed & 0xff);
  return `ssh-ed25519 ${Buffer.concat([len(type.length), type, len(32), key]).toString("base64")}`;
}

/** An ssh-target stack like the guide's: balancer, data, lb1..lbN on 10.0.0.0/24. */
export function sshValues(opts: ConfigOptions = {}): Values {
  const n = opts.webCount ?? 2;
  const balancer: Values = {
    engine: opts.engine ?? "apache",
    lbmethod: "byrequests",
    retry: 10,
    logLevel: "debug",
    managerAllow: ["192.168.1.0/24", "10.9.8.7"],
    address: "10.0.0.5",
    ssh: { host: "203.0.113.5", port: 22, user: "root", hostKey: exampleHostKey(5) },
    url: "http://cluster.example.org",
    managerUrl: "http://cluster.example.org:8081",
  };
  if (opts.stickysession) balancer.stickysession = opts.stickysession;
  const values: Values = {
    target: "ssh",
    app: opts.app ?? "probe",
    serverName: "cluster.example.org",
    balancer,
    data: { address: "10.0.0.10", ssh: { host: "203.0.113.10", user: "root", hostKey: exampleHostKey(10) } },
    files: { share: opts.share ?? "nfs" },
    web: Array.from({ length: n }, (_, i) => ({
      name: `lb${i + 1}`,
      address: `10.0.0.${11 + i}`,
      ssh: { host: `203.0.113.${11 + i}`, port: 22, user: "root", hostKey: exampleHostKey(11 + i) },
      url: `http://web${i + 1}.example.org`,
    })),
  };
  if (opts.app === "drupal") values.drupal = { source: "tarball", url: "https://ftp.drupal.org/files/projects/drupal-10.3.6.tar.gz" };
  return values;
}

/** A docker-target stack: addresses come from docker.subnet. */
export function dockerValues(opts: ConfigOptions & { subnet?: string } = {}): Values {
  const n = opts.webCount ?? 2;
  const balancer: Values = { engine: opts.engine ?? "apache", managerAllow: ["172.30.99.1"] };
  if (opts.stickysession) balancer.stickysession = opts.stickysession;
  return {
    target: "docker",
    app: "probe",
    balancer,
    docker: { subnet: opts.subnet ?? "172.30.99.0/24", webDirectPortBase: 8090 },
    web: Array.from({ length: n }, () => ({})),
  };
}

export function model(values: Values, stack = "test"): ClusterModel {
  return validateConfig({ project: PROJECT, stack }, values);
}

/** The config error `values` get; fails the test when they are accepted (`shown`: the part to print then). */
export function refusal(values: Values, shown: unknown = values): ConfigError {
  try {
    model(values);
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  assert.fail(`accepted: ${JSON.stringify(shown)}`);
}

/** Recognisable test secrets: any of them in a non-secret place is a leak. */
export const SECRETS: PayloadSecrets = {
  dbPassword: "db-Pa55'word\\with-quotes",
  hashSalt: "hash-salt-7f3a9c2e-test",
  managerToken: "manager-token-0b1d2e-test",
  cronKey: "cron-key-5e8a1f-test",
  tlsPrivateKey: "-----BEGIN PRIVATE KEY-----\ntls-key-3c9d-test\n-----END PRIVATE KEY-----",
};

export const OTHER_SECRETS: PayloadSecrets = {
  dbPassword: "another-db-password-91",
  hashSalt: "another-hash-salt-92",
  managerToken: "another-manager-token-93",
  cronKey: "another-cron-key-94",
  tlsPrivateKey: "another-tls-key-95",
};

/** Stands in for proxy-node's built bin (proxy-node/dist/proxy-node.js), which may not be built. */
export const ARTIFACTS: ProxyNodeArtifact = "#!/usr/bin/env node\n\"use strict\";\nconsole.log('proxy-node stand-in');\n";

/** The render matrix of the template suites: web count x engine x cookie style x app. */
export interface RenderCase {
  label: string;
  values: Values;
  webCount: number;
  engine: "apache" | "proxy-node";
  stickysession: string;
}

export function renderCases(): RenderCase[] {
  const out: RenderCase[] = [];
  for (const webCount of [2, 5]) {
    for (const engine of ["apache", "proxy-node"] as const) {
      for (const stickysession of ["BALANCEID", "JSESSIONID|jsessionid"]) {
        out.push({
          label: `${webCount} web, ${engine}, ${stickysession}`,
          values: sshValues({ webCount, engine, stickysession }),
          webCount,
          engine,
          stickysession,
        });
      }
    }
  }
  return out;
}
