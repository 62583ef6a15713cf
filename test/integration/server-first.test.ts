// SPDX-License-Identifier: MIT
// Guards server-speaks-first protocols (SMTP, FTP, SSH, MySQL greet before
// the client says anything): through jfe the greeting arrives at once, not
// after a sniff timeout, and the session works in plaintext.
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { native } from '../../src/native';
import { startJfe } from '../helpers/jfe';
import { createWorld } from '../helpers/netns';
import { requireRoot } from '../helpers/root';
import { startBanner } from '../helpers/servers';

test('a greeting banner comes through with no added wait', async (t) => {
  if (!requireRoot(t)) return;
  const w = createWorld(t);
  await startBanner(w, 2525, '220 banner.test ESMTP ready');
  // A hello timeout far longer than the test allows: any wait on the client would show.
  await startJfe(w, ['--hello-timeout', '60s']);

  for (const [family, host] of [[4, w.srv4], [6, w.srv6]] as const) {
    await t.test(`IPv${family}: greeting, then an echo of what the client says`, async () => {
      const sock = new net.Socket({ fd: native().tcpSocket(family, w.cli.fd), readable: true, writable: true });
      sock.setEncoding('utf8');
      let got = '';
      const banner = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no greeting within 5 s; got ${JSON.stringify(got)}`)), 5000);
        sock.on('data', (d: string) => {
          got += d;
          if (got.includes('\n')) {
            clearTimeout(timer);
            resolve();
          }
        });
        sock.on('error', reject);
      });
      sock.connect(2525, host);
      await banner;
      assert.equal(got, '220 banner.test ESMTP ready\n');
      got = '';
      const echoed = new Promise<void>((resolve) => sock.on('data', () => got.includes('QUIT') && resolve()));
      sock.write('EHLO client.test\r\nQUIT\r\n');
      await echoed;
      assert.equal(got, 'EHLO client.test\r\nQUIT\r\n');
      sock.destroy();
    });
  }
});
