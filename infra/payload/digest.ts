import * as crypto from "node:crypto";

/** Content hash used to diff files and to trigger the steps that watch them. */
export function sha256(s: string): string {
  return crypto.createHash("sha256").update(s).digest("hex");
}
