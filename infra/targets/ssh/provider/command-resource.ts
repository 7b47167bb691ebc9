/**
 * A shell step on a host (an install, a configuration step, a service). Each
 * applied step leaves a marker on the host (markers.ts), so read
 * can tell whether the step's effect is still there: a rebuilt host has no
 * markers, and a service whose `check` fails (stopped, crashed) is not in place.
 * Such a step is applied again from scratch (`create`), not merely updated.
 */
import type { CreateResult, DiffResult, ReadResult, UpdateResult } from "@pulumi/pulumi/provider";
import { execRemote, runRemote, shellQuote } from "../remote-exec";
import { MARKER_DIR, markerFile } from "../markers";
import { CommandProps, commandProps, endpoint } from "./inputs";
import { reveal, secret } from "./secret-values";

/** The marker of the resource with this URN. */
function markerPath(urn: string): string {
  return markerFile(urn.slice(urn.lastIndexOf("::") + 2));
}

/**
 * Runs `script`, then records that the step is applied. The script runs in a
 * subshell so its exit status is its own: bash -e does not stop on a failed
 * command inside an && chain, so a script ending in one would otherwise fail
 * and still be marked applied by the lines after it.
 */
export function withMarker(script: string, urn: string, id: string): string {
  return `(\n${script}\n)\nmkdir -p ${MARKER_DIR}\nprintf '%s' ${shellQuote(id)} > ${shellQuote(markerPath(urn))}`;
}

/** The resource's inputs as the program declares them (state keeps the secret ones secret). */
function inputsOf(p: CommandProps): Record<string, unknown> {
  return {
    connection: p.connection,
    create: p.create,
    update: p.update,
    delete: p.delete,
    check: p.check,
    triggers: p.triggers,
    restart: p.restart,
    restartTriggers: p.restartTriggers,
  };
}

function outputs(p: CommandProps, stdout: string): Record<string, unknown> {
  return {
    ...inputsOf(p),
    connection: { ...p.connection, privateKey: secret(p.connection.privateKey) },
    triggers: secret(p.triggers),
    restartTriggers: secret(p.restartTriggers),
    applied: p.applied,
    found: p.found,
    // A step may print what it read from a secret file: kept, but encrypted like the secrets.
    stdout: secret(stdout.slice(-4000)),
  };
}

/**
 * The same scripts and triggers: only how we reach the host, or how a refresh
 * checks the effect, may differ; neither is a reason to run anything.
 */
function sameWork(a: CommandProps, b: CommandProps): boolean {
  return (
    a.create === b.create &&
    a.update === b.update &&
    a.delete === b.delete &&
    a.restart === b.restart &&
    JSON.stringify(a.triggers) === JSON.stringify(b.triggers) &&
    JSON.stringify(a.restartTriggers) === JSON.stringify(b.restartTriggers)
  );
}

/**
 * What an update runs where the effect is applied, or null for nothing. With a
 * reload script (a service), a changed start or stop script alone (the same
 * reload and triggers) runs nothing: the service is running and nothing it
 * reads changed. Restarting a database because the way to start or stop it was
 * reworded is not what an operator expects. A service with a restart script
 * runs it instead of the reload when a file it reads only at a full start
 * changed (its restartTriggers); the restart takes what a reload would, too.
 */
export function updateScript(olds: CommandProps, news: CommandProps): string | null {
  if (sameWork(olds, news)) return null;
  if (news.restart !== "" && JSON.stringify(olds.restartTriggers) !== JSON.stringify(news.restartTriggers)) return news.restart;
  // With a reload script (a service), a new start, stop or restart script alone
  // changes nothing running: the start is what its next start uses, the stop
  // what its removal runs, the restart what the next restart-worthy change runs.
  const startOrStopOnly = news.update !== "" && sameWork({ ...olds, create: news.create, delete: news.delete, restart: news.restart }, news);
  return startOrStopOnly ? null : news.update || news.create;
}

export const commandResource = {
  diff(oldsRaw: unknown, newsRaw: unknown, what: string): DiffResult {
    const olds = commandProps(oldsRaw, what);
    const news = commandProps(newsRaw, what);
    const replaces = endpoint(olds.connection) !== endpoint(news.connection) ? ["connection"] : [];
    const changes =
      replaces.length > 0 ||
      !olds.applied ||
      !sameWork(olds, news) ||
      olds.check !== news.check ||
      olds.connection.privateKey !== news.connection.privateKey ||
      olds.connection.hostKey !== news.connection.hostKey;
    // The new endpoint may reach the same machine (a name for an address, a new
    // port): removing what the old one had after creating it would undo the create.
    return { changes, replaces, deleteBeforeReplace: replaces.length > 0 };
  },

  async create(urn: string, raw: unknown, what: string): Promise<CreateResult> {
    const p = commandProps(reveal(raw), what);
    const id = `${p.connection.host}:${p.connection.port}:${Date.now()}`;
    const r = await runRemote(p.connection, "create", withMarker(p.create, urn, id));
    return { id, outs: outputs({ ...p, applied: true, found: "" }, r.stdout) };
  },

  async read(id: string, urn: string, rawProps: unknown, what: string): Promise<ReadResult> {
    const p = commandProps(reveal(rawProps), what);
    const marker = shellQuote(markerPath(urn));
    const script = [
      `if [ "$(cat ${marker} 2>/dev/null)" != ${shellQuote(id)} ]; then echo "not applied on this host (no marker: a new or rebuilt host)"; exit 0; fi`,
      p.check
        ? `if ! ( ${p.check} ) >/dev/null 2>&1; then echo "applied, but its check fails now: "${shellQuote(p.check.replace(/[^ -~]/g, ""))}; exit 0; fi`
        : "",
      "echo ok",
    ].join("\n");
    const r = await execRemote(p.connection, script);
    if (r.code !== 0) throw new Error(`${what}: reading its state on ${endpoint(p.connection)} failed (exit ${r.code}): ${r.stderr.trim()}`);
    const said = r.stdout.trim();
    const found = { ...p, applied: said === "ok", found: said === "ok" ? "" : said };
    // No inputs: the engine keeps the program's, so a refresh shows only what drifted.
    return { id, props: outputs(found, String((reveal(rawProps) as { stdout?: unknown }).stdout ?? "")) };
  },

  async update(urn: string, id: string, oldsRaw: unknown, newsRaw: unknown, what: string): Promise<UpdateResult> {
    const olds = commandProps(reveal(oldsRaw), what);
    const news = commandProps(reveal(newsRaw), what);
    // Only the credentials or the check changed (a new key, a recorded host key): nothing to run.
    if (olds.applied && sameWork(olds, news)) return { outs: outputs({ ...news, found: "" }, "") };
    // An effect that is gone is applied again in full (a stopped service is
    // started, not reloaded); a host without our marker is a new or rebuilt one
    // even when no refresh said so (`up --no-refresh`).
    let full = !olds.applied;
    if (!full) {
      const m = await execRemote(news.connection, `cat ${shellQuote(markerPath(urn))} 2>/dev/null || true`);
      full = m.stdout.trim() !== id;
    }
    const script = full ? news.create : updateScript(olds, news);
    if (script === null) return { outs: outputs({ ...news, applied: true, found: "" }, "") };
    const r = await runRemote(news.connection, full ? "create (applied again)" : "update", withMarker(script, urn, id));
    return { outs: outputs({ ...news, applied: true, found: "" }, r.stdout) };
  },

  async delete(urn: string, props: unknown, what: string): Promise<void> {
    const p = commandProps(props, what);
    const rm = `rm -f ${shellQuote(markerPath(urn))}`;
    await runRemote(p.connection, "delete", p.delete ? `${p.delete}\n${rm}` : rm);
  },
};
