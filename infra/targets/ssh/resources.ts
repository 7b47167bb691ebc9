import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";

/**
 * Delivery over SSH as Pulumi dynamic resources. Why not @pulumi/command: its
 * provider plugin cannot be built or downloaded on our build hosts (see
 * scripts/toolchain-status), while dynamic resources run inside the Node SDK,
 * and they let us diff a file on its content hash and rerun exactly the steps
 * that watch it.
 */

export interface SshConnectionArgs {
  host: pulumi.Input<string>;
  port: pulumi.Input<number>;
  user: pulumi.Input<string>;
  privateKey: pulumi.Input<string>;
}

// The provider runs in a separate process from a serialized copy of these
// functions, so it loads the SSH code by absolute path, through ts-node.
const REMOTE_EXEC = path.join(__dirname, "remote-exec.ts");
const TS_PROJECT = path.resolve(__dirname, "..", "..", "..", "tsconfig.json");

type RemoteExec = typeof import("./remote-exec");

function loadRemoteExec(modulePath: string, project: string): RemoteExec {
  // Once per provider process: every resource operation calls this, and each
  // ts-node registration would stack another compile hook.
  const cache = globalThis as { __drupalClusterRemoteExec?: RemoteExec };
  if (!cache.__drupalClusterRemoteExec) {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    require("ts-node").register({ transpileOnly: true, project });
    cache.__drupalClusterRemoteExec = require(modulePath) as RemoteExec;
  }
  return cache.__drupalClusterRemoteExec;
}

interface FileInputs {
  connection: { host: string; port: number; user: string; privateKey: string };
  path: string;
  content: string;
  mode: string;
  owner: string;
}

const fileProvider: pulumi.dynamic.ResourceProvider = {
  async diff(_id: string, olds: { path: string; hash: string; mode: string; owner: string }, news: FileInputs) {
    const hash = require("node:crypto").createHash("sha256").update(news.content).digest("hex");
    const changes = olds.hash !== hash || olds.mode !== news.mode || olds.owner !== news.owner || olds.path !== news.path;
    return { changes, replaces: olds.path !== news.path ? ["path"] : [], deleteBeforeReplace: false };
  },
  async create(inputs: FileInputs) {
    const rx = loadRemoteExec(REMOTE_EXEC, TS_PROJECT);
    await rx.writeRemoteFile(inputs.connection, inputs.path, inputs.content, inputs.mode, inputs.owner);
    const hash = require("node:crypto").createHash("sha256").update(inputs.content).digest("hex");
    return { id: `${inputs.connection.host}:${inputs.connection.port}:${inputs.path}`, outs: { ...inputs, hash } };
  },
  async update(_id: string, _olds: unknown, news: FileInputs) {
    const rx = loadRemoteExec(REMOTE_EXEC, TS_PROJECT);
    await rx.writeRemoteFile(news.connection, news.path, news.content, news.mode, news.owner);
    const hash = require("node:crypto").createHash("sha256").update(news.content).digest("hex");
    return { outs: { ...news, hash } };
  },
  async delete(_id: string, olds: FileInputs) {
    const rx = loadRemoteExec(REMOTE_EXEC, TS_PROJECT);
    await rx.removeRemoteFile(olds.connection, olds.path);
  },
};

export interface RemoteFileArgs {
  connection: SshConnectionArgs;
  path: string;
  content: pulumi.Input<string>;
  mode: string;
  owner: string;
}

/** One file on a host: rewritten when its content changes, removed (or restored) on destroy. */
export class RemoteFile extends pulumi.dynamic.Resource {
  declare readonly hash: pulumi.Output<string>;
  constructor(name: string, args: RemoteFileArgs, opts?: pulumi.CustomResourceOptions) {
    super(fileProvider, name, { ...args, hash: undefined }, { ...opts, additionalSecretOutputs: ["content", "hash"] }, "drupal-cluster", "RemoteFile");
  }
}

interface CommandInputs {
  connection: { host: string; port: number; user: string; privateKey: string };
  create: string;
  update: string;
  delete: string;
  triggers: string[];
}

const commandProvider: pulumi.dynamic.ResourceProvider = {
  async diff(_id: string, olds: CommandInputs, news: CommandInputs) {
    const changes =
      olds.create !== news.create ||
      olds.update !== news.update ||
      olds.delete !== news.delete ||
      JSON.stringify(olds.triggers) !== JSON.stringify(news.triggers);
    return { changes };
  },
  async create(inputs: CommandInputs) {
    const rx = loadRemoteExec(REMOTE_EXEC, TS_PROJECT);
    const r = await rx.runRemote(inputs.connection, "create", inputs.create);
    return { id: `${inputs.connection.host}:${inputs.connection.port}:${Date.now()}`, outs: { ...inputs, stdout: r.stdout.slice(-4000) } };
  },
  async update(_id: string, _olds: CommandInputs, news: CommandInputs) {
    const rx = loadRemoteExec(REMOTE_EXEC, TS_PROJECT);
    const r = await rx.runRemote(news.connection, "update", news.update || news.create);
    return { outs: { ...news, stdout: r.stdout.slice(-4000) } };
  },
  async delete(_id: string, olds: CommandInputs) {
    if (!olds.delete) return;
    const rx = loadRemoteExec(REMOTE_EXEC, TS_PROJECT);
    await rx.runRemote(olds.connection, "delete", olds.delete);
  },
};

export interface RemoteCommandArgs {
  connection: SshConnectionArgs;
  /** Runs when the resource is created. */
  create: string;
  /** Runs when a trigger changes; defaults to `create`. */
  update?: string;
  /** Runs on destroy. */
  delete?: string;
  triggers: pulumi.Input<pulumi.Input<string>[]>;
}

/** A shell step on a host: runs on create, again when its triggers change. */
export class RemoteCommand extends pulumi.dynamic.Resource {
  declare readonly stdout: pulumi.Output<string>;
  constructor(name: string, args: RemoteCommandArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      commandProvider,
      name,
      { update: "", delete: "", ...args, stdout: undefined },
      { ...opts, additionalSecretOutputs: ["triggers"] },
      "drupal-cluster",
      "RemoteCommand",
    );
  }
}
