// SPDX-License-Identifier: MIT
// Guards "services that already speak TLS keep doing so": through jfe, a
// client of nginx's own TLS port sees nginx's certificate, verified against
// nginx's CA, never jfe's; while a plaintext port of the same nginx gets
// jfe's TLS.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { startJfe } from '../helpers/jfe';
import { createWorld } from '../helpers/netns';
import { makeServicePki } from '../helpers/pki';
import { requireRoot } from '../helpers/root';
import { startNginx } from '../helpers/servers';
import { run } from '../helpers/spawn';

test('a service with its own TLS is passed through untouched', async (t) => {
  if (!requireRoot(t, ['nginx', 'curl', 'openssl'])) return;
  const w = createWorld(t);
  const pki = makeServicePki(path.join(w.tmp, 'pki'), 'nginx.test', w.srv4);
  const nginx = await startNginx(w, { tls: pki });
  const jfe = await startJfe(w);
  const curl = (args: string[]) => run('ip', ['netns', 'exec', w.cli.name, 'curl', '-sS', '--max-time', '10', ...args]);

  for (let i = 1; i <= 3; i++) {
    await t.test(`request ${i}: nginx's own certificate, verified with nginx's CA`, async () => {
      const r = await curl(['--cacert', pki.caCert, '--resolve', `nginx.test:8443:${w.srv4}`, 'https://nginx.test:8443/']);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, 'nginx-tls\n');
    });
  }

  await t.test("jfe's CA does not verify it: jfe did not terminate", async () => {
    const r = await curl(['--cacert', jfe.caFile, `https://${w.srv4}:8443/`]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /certificate/i);
  });

  await t.test('openssl sees the issuer of nginx', async () => {
    const r = await run('ip', ['netns', 'exec', w.cli.name, 'openssl', 's_client', '-connect', `${w.srv4}:8443`, '-servername', 'nginx.test', '-CAfile', pki.caCert, '-verify_return_error'], { input: '' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /issuer=CN = nginx\.test test CA/);
    assert.match(r.stdout, /Verify return code: 0 \(ok\)/);
  });

  await t.test('IPv6 too', async () => {
    const r = await curl(['--cacert', pki.caCert, '--resolve', `nginx.test:8443:[${w.srv6}]`, 'https://nginx.test:8443/']);
    assert.equal(r.status, 0, r.stderr);
  });

  await t.test('the plaintext port of the same nginx gets TLS from jfe', async () => {
    const r = await curl(['--cacert', jfe.caFile, `https://${w.srv4}:8080/`]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'nginx-plain\n');
  });

  await t.test("nginx's TLS port logged the real client too", () => {
    const lines = fs.readFileSync(nginx.accessLog, 'utf8').trim().split('\n').filter((l) => / 8443 /.test(l));
    assert.ok(lines.length >= 3);
    for (const l of lines) assert.match(l, /^(10\.77\.0\.1|fd77::1) /);
  });
});
