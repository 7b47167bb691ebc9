/**
 * One file on a host. Diffs on the content's hash, mode and owner; read tells
 * what is on the host now (absent, edited, other mode or owner), so a refresh
 * shows the drift and the next update writes the file back.
 */
import { createHash } from "node:crypto";
import type { CreateResult, DiffResult, ReadResult, UpdateResult } from "@pulumi/pulumi/provider";
import { removeRemoteFile, statRemoteFile, writeRemoteFile } from "../remote-exec";
import { endpoint, FileProps, fileProps } from "./inputs";
import { reveal, secret } from "./secret-values";

export function contentHash(content: string): string {
  return createHash("sha256").update(content).digest("hex");
}

/** "0644" and "644" are the same mode. */
function sameMode(a: string, b: string): boolean {
  return parseInt(a, 8) === parseInt(b, 8);
}

/** The resource's inputs as the program declares them (state keeps the secret ones secret). */
function inputsOf(p: FileProps): Record<string, unknown> {
  return { connection: p.connection, path: p.path, content: p.content, mode: p.mode, owner: p.owner };
}

/**
 * What state keeps: the inputs with the content and key secret, the hash, and
 * what the last read found different on the host ("" when nothing).
 */
function outputs(p: FileProps, hash: string, found: string): Record<string, unknown> {
  return {
    ...inputsOf(p),
    connection: { ...p.connection, privateKey: secret(p.connection.privateKey) },
    content: secret(p.content),
    hash: secret(hash),
    found,
  };
}

export const fileResource = {
  diff(oldsRaw: unknown, newsRaw: unknown, what: string): DiffResult {
    const olds = fileProps(oldsRaw, what);
    const news = fileProps(newsRaw, what);
    const replaces: string[] = [];
    if (olds.path !== news.path) replaces.push("path");
    // Another host: what lives on the old one is removed after the new one has it.
    if (endpoint(olds.connection) !== endpoint(news.connection)) replaces.push("connection");
    const changes =
      replaces.length > 0 ||
      olds.hash !== contentHash(news.content) ||
      !sameMode(olds.mode, news.mode) ||
      olds.owner !== news.owner ||
      olds.connection.privateKey !== news.connection.privateKey ||
      olds.connection.hostKey !== news.connection.hostKey;
    // The new endpoint may reach the same machine (a name for an address, a new
    // port): removing the old file after writing the new one would undo the write.
    return { changes, replaces, deleteBeforeReplace: replaces.includes("connection") };
  },

  async create(raw: unknown, what: string): Promise<CreateResult> {
    const p = fileProps(reveal(raw), what);
    await writeRemoteFile(p.connection, p.path, p.content, p.mode, p.owner, true);
    return { id: `${p.connection.host}:${p.connection.port}:${p.path}`, outs: outputs(p, contentHash(p.content), "") };
  },

  async read(id: string, rawProps: unknown, what: string): Promise<ReadResult> {
    const p = fileProps(reveal(rawProps), what);
    const now = await statRemoteFile(p.connection, p.path);
    // Gone from the host: gone from state, so the next update creates it again.
    if (now === null) return {};
    const seen = { ...p, mode: sameMode(now.mode, p.mode) ? p.mode : now.mode.padStart(4, "0"), owner: now.owner };
    const found = [
      now.hash !== p.hash ? "content differs from what was written (edited on the host)" : "",
      !sameMode(now.mode, p.mode) ? `mode is ${now.mode}, not ${p.mode}` : "",
      now.owner !== p.owner ? `owner is ${now.owner}, not ${p.owner}` : "",
    ].filter(Boolean);
    // No inputs: the engine keeps the program's, so a refresh shows only what drifted.
    return { id, props: outputs(seen, now.hash, found.join("; ")) };
  },

  async update(oldsRaw: unknown, raw: unknown, what: string): Promise<UpdateResult> {
    const olds = fileProps(reveal(oldsRaw), what);
    const p = fileProps(reveal(raw), what);
    const hash = contentHash(p.content);
    // Only the credentials changed (a new key, a recorded host key): the file is as it should be.
    const same = olds.hash === hash && sameMode(olds.mode, p.mode) && olds.owner === p.owner;
    if (!same) await writeRemoteFile(p.connection, p.path, p.content, p.mode, p.owner, false);
    return { outs: outputs(p, hash, "") };
  },

  async delete(props: unknown, what: string): Promise<void> {
    const p = fileProps(props, what);
    await removeRemoteFile(p.connection, p.path);
  },
};
