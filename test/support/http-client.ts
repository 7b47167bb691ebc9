import * as http from "node:http";

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP request on a fresh connection, as a new browser tab would make it. */
export function request(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? "GET", headers: opts.headers, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on("error", reject);
    });
    req.setTimeout(opts.timeoutMs ?? 10000, () => req.destroy(new Error(`timeout: ${url}`)));
    req.on("error", reject);
    req.end(opts.body);
  });
}

/** A client with a cookie jar: what a browser keeps between requests. */
export class Browser {
  readonly jar = new Map<string, string>();

  constructor(private readonly base: string) {}

  cookie(name: string): string | undefined {
    return this.jar.get(name);
  }

  async get(path: string, headers: Record<string, string> = {}): Promise<Reply> {
    return this.send("GET", path, undefined, headers);
  }

  async post(path: string, form: Record<string, string>): Promise<Reply> {
    const body = new URLSearchParams(form).toString();
    return this.send("POST", path, body, { "content-type": "application/x-www-form-urlencoded" });
  }

  private async send(method: string, path: string, body: string | undefined, headers: Record<string, string>): Promise<Reply> {
    const cookie = [...this.jar].map(([k, v]) => `${k}=${v}`).join("; ");
    const r = await request(this.base + path, { method, body, headers: { ...(cookie ? { cookie } : {}), ...headers } });
    for (const line of ([] as string[]).concat(r.headers["set-cookie"] ?? [])) {
      const [pair] = line.split(";");
      const eq = pair.indexOf("=");
      if (eq > 0) this.jar.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
    }
    return r;
  }
}

/** The probe app's answer on `/`. */
export interface ProbePage {
  server: string;
  route: string;
  visits: number;
  user: string | null;
  session: string;
  /** X-Forwarded-For as the web server received it (else the peer's address). */
  clientIp: string;
  forwardedHost: string | null;
  forwarded: string | null;
}

export function probePage(r: Reply): ProbePage {
  if (r.status !== 200) throw new Error(`expected 200 from the probe app, got ${r.status}: ${r.body.slice(0, 300)}`);
  return JSON.parse(r.body) as ProbePage;
}
