/**
 * Byte counting and sha256 of a stream as it passes, and the progress lines of
 * long transfers. The backup never holds a part in memory: each chunk is
 * counted, hashed and written on, so the checksum is of exactly the bytes stored
 * (or sent) and costs no second read.
 */
import { createHash, Hash } from "node:crypto";
import { Transform, TransformCallback } from "node:stream";

/** Passes bytes through unchanged, counting and hashing them. */
export class Meter extends Transform {
  bytes = 0;
  private readonly hash: Hash = createHash("sha256");

  constructor(private readonly onBytes: (total: number) => void = () => undefined) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    this.hash.update(chunk);
    this.onBytes(this.bytes);
    done(null, chunk);
  }

  /** The hex sha256 of everything that passed; call once, after the stream ended. */
  sha256(): string {
    return this.hash.digest("hex");
  }
}

export function humanBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** Where progress goes: a line per update. The CLI prints them; tests keep or drop them. */
export type ProgressSink = (line: string) => void;

/**
 * Progress of one transfer: at most one line every `everyMs` while it runs
 * (bytes so far and the rate), and always a last line with the total. Plain
 * lines, no cursor tricks: they read the same in a terminal, a CI log or a file.
 */
export class Progress {
  private readonly started = Date.now();
  private lastShown = 0;

  constructor(
    private readonly label: string,
    private readonly sink: ProgressSink,
    private readonly everyMs = 2000,
  ) {}

  update(bytes: number): void {
    const now = Date.now();
    if (now - this.lastShown < this.everyMs) return;
    this.lastShown = now;
    this.sink(`${this.label}: ${humanBytes(bytes)} so far${this.rate(bytes, now)}`);
  }

  done(bytes: number, note = ""): void {
    this.sink(`${this.label}: ${humanBytes(bytes)} in ${((Date.now() - this.started) / 1000).toFixed(1)} s${note ? `, ${note}` : ""}`);
  }

  private rate(bytes: number, now: number): string {
    const s = (now - this.started) / 1000;
    return s > 0.5 ? ` (${humanBytes(Math.round(bytes / s))}/s)` : "";
  }
}
