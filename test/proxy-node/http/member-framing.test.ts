import { strict as assert } from 'node:assert';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { startProxy, baseConfig, request, closeAll } from '../helpers';

/** A member that writes raw bytes, to check how the proxy reads unusual but valid (or invalid) answers. */
async function rawMember(answer: string, closeAfter: boolean) {
  const sockets = new Set<net.Socket>();
  const s = net.createServer((c) => {
    sockets.add(c);
    c.on('error', () => undefined);
    c.once('data', () => (closeAfter ? c.end(answer) : c.write(answer)));
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`,
    close: () => new Promise<void>((r) => {
      for (const c of sockets) c.destroy();
      s.close(() => r());
    }),
  };
}

describe('http: unusual member answers', () => {
  let close: (() => Promise<void>) | null = null;
  afterEach(async () => {
    await closeAll();
    if (close) await close();
    close = null;
  });

  it('a body delimited by connection close reaches the client whole', async () => {
    const m = await rawMember('HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nold-style body', true);
    close = m.close;
    const app = await startProxy(baseConfig([{ url: m.url, route: 'lb1' }]));
    const r = await request(app.port, { path: '/' });
    assert.equal(r.status, 200);
    assert.equal(r.body, 'old-style body');
  });

  it('a chunked answer with trailers reaches the client de-chunked and whole', async () => {
    const m = await rawMember('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nDrup\r\n3\r\nal!\r\n0\r\nX-T: 1\r\n\r\n', false);
    close = m.close;
    const app = await startProxy(baseConfig([{ url: m.url, route: 'lb1' }]));
    const r = await request(app.port, { path: '/' });
    assert.equal(r.body, 'Drupal!');
  });

  it('a member answering garbage gives the client a 502', async () => {
    const m = await rawMember('SMTP ready\r\n\r\n', false);
    close = m.close;
    const app = await startProxy(baseConfig([{ url: m.url, route: 'lb1' }]));
    const r = await request(app.port, { path: '/' });
    assert.equal(r.status, 502);
  });

  it('a member answering with conflicting Content-Length gives 502, not a split response', async () => {
    const m = await rawMember('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc', false);
    close = m.close;
    const app = await startProxy(baseConfig([{ url: m.url, route: 'lb1' }]));
    const r = await request(app.port, { path: '/' });
    assert.equal(r.status, 502);
  });
});
