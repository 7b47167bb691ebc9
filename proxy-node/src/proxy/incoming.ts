// Policy checks on a parsed client request before anything is sent upstream.
// Syntax, framing and limits were already enforced by request-parser.ts;
// this is what keeps proxy-node a reverse proxy only. Returns the status to
// refuse with, or 0 to proceed.
import type { RequestHead } from "./request-parser";

export function refuseStatus(req: RequestHead): number {
  // CONNECT would make us a tunnel to anywhere.
  if (req.method === "CONNECT") return 405;
  // Origin-form only: an absolute-form target ("GET http://x/") would make us
  // a forward proxy; asterisk-form ("OPTIONS *") names no resource of a member.
  if (req.url.charCodeAt(0) !== 47 /* / */) return 400;
  return 0;
}
