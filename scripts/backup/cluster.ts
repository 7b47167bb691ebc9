/**
 * A stack's cluster as the backup and restore reach it: the stack opened the way
 * scripts/stack.ts opens it (Automation API, the stack's config and secrets),
 * the SSH key from its sshPrivateKey secret (held in memory), and each host's
 * recorded key (ssh.hostKey; for local hosts the one scripts/local-hosts.ts
 * made), checked during the handshake as the provider checks it.
 */
import { PROJECT } from "../../infra/config/stack-file";
import { ClusterModel, HostModel } from "../../infra/model/types";
import { HostKeyMismatch, SshConnection } from "../../infra/targets/ssh/remote-exec";
import { openStack, StackOptions } from "../stack";
import { ClusterAccess } from "./access";
import { Remote, sshRemote } from "./remote";

function connection(h: HostModel, privateKey: string): SshConnection {
  if (!h.ssh) throw new Error(`host ${h.name} has no ssh endpoint`);
  // As the provider: no connection to a host whose key we cannot check.
  if (!h.ssh.hostKey) throw new Error(`host ${h.name} has no recorded host key (ssh.hostKey): set it (ssh-keyscan -p ${h.ssh.port} ${h.ssh.host} prints it)`);
  return { host: h.ssh.host, port: h.ssh.port, user: h.ssh.user, hostKey: h.ssh.hostKey, privateKey };
}

/**
 * The first web server that answers: with files.share external any of them sees
 * the shared storage. One that does not answer is passed over (said so); one
 * that presents another host key stops everything, as it stops `up`.
 */
async function firstAnswering(hosts: Array<{ host: string; remote: Remote }>, say: (line: string) => void): Promise<{ host: string; remote: Remote }> {
  const problems: string[] = [];
  for (const h of hosts) {
    try {
      const r = await h.remote.run("true");
      if (r.code === 0) {
        for (const p of problems) say(`warning: passed over ${p}`);
        return h;
      }
      problems.push(`${h.remote.label}: exit ${r.code}`);
    } catch (e) {
      if (e instanceof HostKeyMismatch) throw e;
      problems.push(e instanceof Error ? e.message : String(e));
    }
  }
  throw new Error(`no web server answered, so the shared files cannot be reached:\n${problems.join("\n")}`);
}

/** The access a model and key give, without the Pulumi engine (tests use it too). */
export async function accessFromModel(model: ClusterModel, privateKey: string, say: (line: string) => void = () => undefined): Promise<ClusterAccess> {
  if (model.target !== "ssh") {
    throw new Error(`stack ${model.stack} uses the ${model.target} target: backup and restore work over SSH (the ssh target) only`);
  }
  if (model.files.share !== "nfs" && model.files.share !== "external") throw new Error(`files.share ${model.files.share} is not one the backup reads`);
  const data = { host: model.data.host.name, remote: sshRemote(model.data.host.name, connection(model.data.host, privateKey)) };
  const filesHost =
    model.files.share === "nfs"
      ? data
      : await firstAnswering(
          model.web.map((w) => ({ host: w.host.name, remote: sshRemote(w.host.name, connection(w.host, privateKey)) })),
          say,
        );
  return {
    project: model.project,
    stack: model.stack,
    app: model.app.kind,
    database: model.data.database,
    data,
    files: { publicPath: model.files.publicPath, share: model.files.share, host: filesHost.host, remote: filesHost.remote },
  };
}

/** Opens the stack and checks it has a cluster (an `up` made outputs) before any host is contacted. */
export async function stackAccess(stackName: string, opts: StackOptions = {}, say: (line: string) => void = () => undefined): Promise<ClusterAccess> {
  const { stack, model } = await openStack(stackName, { ...opts, skipPayloadCheck: true, existing: true });
  const outputs = await stack.outputs();
  if (Object.keys(outputs).length === 0)
    throw new Error(`stack ${stackName} has no cluster (no outputs in its state): bring it up first (DRUPAL_CLUSTER_STACK=${stackName} npm run up)`);
  const key = (await stack.getConfig(`${PROJECT}:sshPrivateKey`)).value;
  return accessFromModel(model, key, say);
}
