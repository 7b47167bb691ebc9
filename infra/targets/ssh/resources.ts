import * as pulumi from "@pulumi/pulumi";
import { PROVIDER_VERSION } from "./plugin";

/**
 * The ssh target's resources, served by our own provider plugin
 * (infra/targets/ssh/provider; built and installed by scripts/bootstrap).
 * Why not @pulumi/command: its plugin cannot be built or downloaded here (see
 * scripts/toolchain.ts). Why not dynamic resources, as before: they keep a copy
 * of their code, with this checkout's paths, in every resource's state, and
 * they cannot read what is on a host. Our provider reads files, steps and
 * services back, so `refresh` tells what drifted and `up` repairs it.
 */

export const REMOTE_FILE_TYPE = "drupal-cluster:ssh:RemoteFile";
export const REMOTE_COMMAND_TYPE = "drupal-cluster:ssh:RemoteCommand";

export interface SshConnectionArgs {
  host: pulumi.Input<string>;
  port: pulumi.Input<number>;
  user: pulumi.Input<string>;
  privateKey: pulumi.Input<string>;
  /** The host's public key (OpenSSH line); a host presenting another is refused. */
  hostKey?: pulumi.Input<string>;
}

function withVersion<T extends pulumi.CustomResourceOptions>(opts: T | undefined, secrets: string[]): pulumi.CustomResourceOptions {
  return { ...opts, version: PROVIDER_VERSION, additionalSecretOutputs: secrets };
}

export interface RemoteFileArgs {
  connection: SshConnectionArgs;
  path: string;
  content: pulumi.Input<string>;
  mode: string;
  owner: string;
}

/** One file on a host: rewritten when its content changes or drifts, removed (or restored) on destroy. */
export class RemoteFile extends pulumi.CustomResource {
  declare readonly hash: pulumi.Output<string>;
  constructor(name: string, args: RemoteFileArgs, opts?: pulumi.CustomResourceOptions) {
    super(REMOTE_FILE_TYPE, name, { ...args, hash: undefined }, withVersion(opts, ["content", "hash"]));
  }
}

export interface RemoteCommandArgs {
  connection: SshConnectionArgs;
  /** Runs when the resource is created, and again when read found its effect gone. */
  create: string;
  /** Runs when a trigger changes; defaults to `create`. */
  update?: string;
  /** Runs on destroy. */
  delete?: string;
  /** Exits 0 while the effect is in place (a service is running); read runs it. */
  check?: string;
  triggers: pulumi.Input<pulumi.Input<string>[]>;
  /** A service: runs instead of `update` when `restartTriggers` change (files a reload does not pick up). */
  restart?: string;
  restartTriggers?: pulumi.Input<pulumi.Input<string>[]>;
}

/** A shell step on a host: runs on create, again when its triggers change or its effect is gone. */
export class RemoteCommand extends pulumi.CustomResource {
  declare readonly stdout: pulumi.Output<string>;
  declare readonly applied: pulumi.Output<boolean>;
  declare readonly found: pulumi.Output<string>;
  constructor(name: string, args: RemoteCommandArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      REMOTE_COMMAND_TYPE,
      name,
      { update: "", delete: "", check: "", ...args, stdout: undefined, applied: undefined, found: undefined },
      withVersion(opts, ["triggers", "restartTriggers"]),
    );
  }
}
