// Checks on a client request before anything is sent upstream. Returns the
// status to refuse with, or 0 to proceed. node's parser has already rejected
// malformed framing (conflicting Content-Length/Transfer-Encoding, bad
// chunking, oversized headers) with 400/431 before we see the request.
import type { IncomingMessage } from 'node:http';

export function refuseStatus(req: IncomingMessage): number {
  const url = req.url ?? '';
  // Origin-form only: an absolute-form target ("GET http://x/") would make us
  // a forward proxy; authority-form belongs to CONNECT, which is refused too.
  if (url.charCodeAt(0) !== 47 /* / */) return 400;
  if (req.method === 'CONNECT') return 405;
  if (req.httpVersionMajor !== 1) return 505;
  if (req.httpVersionMinor === 1 && req.headers.host === undefined) return 400;
  return 0;
}
