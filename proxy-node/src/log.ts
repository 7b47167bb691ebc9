// JSON lines on stdout (requests) and stderr (events), one object per line,
// so journald and container logs can be parsed without a format spec.
export interface Logger {
  event(level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>): void;
  request(line: Record<string, unknown>): void;
}

export class JsonLogger implements Logger {
  constructor(
    public requestsOn: boolean,
    private out: NodeJS.WritableStream = process.stdout,
    private err: NodeJS.WritableStream = process.stderr,
  ) {}

  event(level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>): void {
    this.err.write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }) + "\n");
  }

  request(line: Record<string, unknown>): void {
    if (this.requestsOn) this.out.write(JSON.stringify(line) + "\n");
  }
}

/** For tests and embedding: drops everything. */
export const silentLogger: Logger = {
  event() {},
  request() {},
};
