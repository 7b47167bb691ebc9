/**
 * The HTTP client of the tests. The request and the probe page's reading are
 * `npm run verify`'s (ops/verify), one copy of each.
 */
import { Reply, request } from "../../ops/verify/http";

export { Reply, request };
export { ProbePage, probePage } from "../../ops/verify/probe";

/**
 * A test client that keeps every cookie it is sent, by name, whatever its
 * Domain or Path, so tests can copy and set cookies by hand. Not a browser:
 * verify's Browser (ops/verify/browser.ts) keeps cookies as one does.
 */
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
