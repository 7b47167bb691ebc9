import { CookieJar, Received } from "./cookie-jar";
import { Reply, request } from "./http";

/**
 * A client that keeps cookies as a browser does (./cookie-jar.ts): what it
 * sends back is what a real browser would, so a sticky cookie with a Domain
 * that does not fit the URL is lost here as it is there.
 */
export class Browser {
  readonly jar = new CookieJar();
  /** What the jar did with each Set-Cookie of the last response. */
  lastReceived: Received[] = [];

  constructor(readonly base: string) {}

  /** The value the jar would send to the base URL under `name`. */
  cookie(name: string): string | undefined {
    return this.jar.sendable(new URL(`${this.base}/`)).find((c) => c.name === name)?.value;
  }

  /** Sets a cookie by hand, as a client may (e.g. a sticky cookie naming another route). */
  pin(name: string, value: string): void {
    this.jar.put(new URL(`${this.base}/`), name, value);
  }

  get(path: string, headers: Record<string, string> = {}): Promise<Reply> {
    return this.send("GET", path, undefined, headers);
  }

  post(path: string, form: Record<string, string>): Promise<Reply> {
    const body = new URLSearchParams(form).toString();
    return this.send("POST", path, body, { "content-type": "application/x-www-form-urlencoded" });
  }

  private async send(method: string, path: string, body: string | undefined, headers: Record<string, string>): Promise<Reply> {
    const url = new URL(this.base + path);
    const cookie = this.jar.header(url);
    const r = await request(url.toString(), { method, body, headers: { ...(cookie ? { cookie } : {}), ...headers } });
    this.lastReceived = ([] as string[]).concat(r.headers["set-cookie"] ?? []).map((h) => this.jar.receive(url, h));
    return r;
  }
}
