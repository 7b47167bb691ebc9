/**
 * drupal-cluster's resource provider: the ssh target's files and steps, served
 * to the engine as a plugin (pulumi-resource-drupal-cluster) built from this
 * checkout and installed by scripts/bootstrap. Unlike a dynamic provider, no
 * code and no path of any checkout is kept in the stack's state, so any clone
 * with the same backend can change or destroy the stack.
 */
import type { CheckResult, CreateResult, DiffResult, Provider, ReadResult, UpdateResult } from "@pulumi/pulumi/provider";
import { commandResource } from "./command-resource";
import { fileResource } from "./file-resource";
import { reveal } from "./secret-values";
import { HostUnreachable } from "../remote-exec";

export const PACKAGE = "drupal-cluster";
export const FILE_TYPE = `${PACKAGE}:ssh:RemoteFile`;
export const COMMAND_TYPE = `${PACKAGE}:ssh:RemoteCommand`;

/** The resource type of a URN: the last part of its type chain. */
function typeOf(urn: string): string {
  const qualified = urn.split("::")[2] ?? "";
  return qualified.slice(qualified.lastIndexOf("$") + 1);
}

/** The resource's name, for error messages. */
function nameOf(urn: string): string {
  return urn.slice(urn.lastIndexOf("::") + 2);
}

function unknownType(urn: string): Error {
  return new Error(`drupal-cluster provider: unknown resource type ${typeOf(urn)} (${urn})`);
}

export class DeliveryProvider implements Provider {
  constructor(readonly version: string) {}

  async check(_urn: string, _olds: unknown, news: unknown): Promise<CheckResult> {
    // The values keep their secret wrappers: the engine keeps them secret from here on.
    return { inputs: news };
  }

  async diff(_id: string, urn: string, olds: unknown, news: unknown): Promise<DiffResult> {
    const t = typeOf(urn);
    if (t === FILE_TYPE) return fileResource.diff(reveal(olds), reveal(news), nameOf(urn));
    if (t === COMMAND_TYPE) return commandResource.diff(reveal(olds), reveal(news), nameOf(urn));
    throw unknownType(urn);
  }

  async create(urn: string, inputs: unknown): Promise<CreateResult> {
    const t = typeOf(urn);
    if (t === FILE_TYPE) return fileResource.create(inputs, nameOf(urn));
    if (t === COMMAND_TYPE) return commandResource.create(urn, inputs, nameOf(urn));
    throw unknownType(urn);
  }

  async read(id: string, urn: string, props: unknown): Promise<ReadResult> {
    const t = typeOf(urn);
    if (t === FILE_TYPE) return fileResource.read(id, props, nameOf(urn));
    if (t === COMMAND_TYPE) return commandResource.read(id, urn, props, nameOf(urn));
    throw unknownType(urn);
  }

  async update(id: string, urn: string, olds: unknown, news: unknown): Promise<UpdateResult> {
    const t = typeOf(urn);
    if (t === FILE_TYPE) return fileResource.update(olds, news, nameOf(urn));
    if (t === COMMAND_TYPE) return commandResource.update(urn, id, olds, news, nameOf(urn));
    throw unknownType(urn);
  }

  async delete(_id: string, urn: string, props: unknown): Promise<void> {
    const t = typeOf(urn);
    try {
      if (t === FILE_TYPE) return await fileResource.delete(reveal(props), nameOf(urn));
      if (t === COMMAND_TYPE) return await commandResource.delete(urn, reveal(props), nameOf(urn));
    } catch (e) {
      // Nothing can be removed from a host that is gone; only the operator knows it is gone for good.
      if (e instanceof HostUnreachable) {
        const stack = urn.split("::")[0].replace(/^urn:pulumi:/, "");
        throw new Error(
          `${e.message}. If that host is gone for good, drop this resource from the stack's state instead: npm run pulumi -- state delete --stack ${stack} --yes '${urn}'`,
          { cause: e },
        );
      }
      throw e;
    }
    throw unknownType(urn);
  }
}
