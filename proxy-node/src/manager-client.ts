// The command line's one way to a running proxy-node: its manager API on this
// host, with the config's token (drain, enable, status, admit, retire).
import * as http from "node:http";
import type { Config } from "./config";

export interface ManagerAnswer {
  status: number;
  body: string;
}

/** Bounded: a manager that accepts and never answers fails the call after 5 s. */
export function managerCall(cfg: Config, method: "GET" | "POST", path: string, body?: object): Promise<ManagerAnswer> {
  const mgr = cfg.manager;
  if (!mgr) return Promise.reject(new Error('config has no "manager": cannot reach the running proxy-node'));
  const host = mgr.host === "0.0.0.0" || mgr.host === "::" ? "127.0.0.1" : mgr.host;
  const data = body === undefined ? undefined : JSON.stringify(body);
  const headers: Record<string, string | number> = { Authorization: `Bearer ${mgr.token}` };
  if (data !== undefined) Object.assign(headers, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data) });
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port: mgr.port, method, path, agent: false, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.setTimeout(5000, () => req.destroy(new Error(`the manager on ${host}:${mgr.port} did not answer within 5 s`)));
    req.on("error", reject);
    req.end(data);
  });
}
