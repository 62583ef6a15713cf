// SPDX-License-Identifier: MIT
// Guards jfe's reason to exist: with `jfe run`, the same port of a plaintext
// nginx answers http and https (certificate from the internal CA, by SNI or
// by the dialled address), and nginx sees the client's real address.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { startJfe } from '../helpers/jfe';
import { createWorld } from '../helpers/netns';
import { requireRoot } from '../helpers/root';
import { startNginx } from '../helpers/servers';
import { run } from '../helpers/spawn';

test('one port answers http and https; the service sees the real client', async (t) => {
  if (!requireRoot(t, ['nginx', 'curl', 'openssl'])) return;
  const w = createWorld(t);
  const nginx = await startNginx(w);
  const jfe = await startJfe(w);
  const curl = (args: string[]) => run('ip', ['netns', 'exec', w.cli.name, 'curl', '-sS', '--max-time', '10', ...args]);

  await t.test('plaintext http is forwarded unchanged', async () => {
    const r = await curl([`http://${w.srv4}:8080/`]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'nginx-plain\n');
  });

  await t.test('https by IP (no SNI) verifies against the internal CA, no -k', async () => {
    const r = await curl(['--cacert', jfe.caFile, `https://${w.srv4}:8080/`]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'nginx-plain\n');
  });

  await t.test('https by name (SNI) gets a certificate for that name', async () => {
    const r = await curl(['--cacert', jfe.caFile, '--resolve', `shop.example:8080:${w.srv4}`, 'https://shop.example:8080/']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'nginx-plain\n');
  });

  await t.test('IPv6 https', async () => {
    const r = await curl(['--cacert', jfe.caFile, `https://[${w.srv6}]:8080/`]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'nginx-plain\n');
  });

  await t.test('TLS 1.2 and TLS 1.3 both work; ALPN offers only http/1.1', async () => {
    for (const v of ['-tls1_2', '-tls1_3']) {
      const r = await run('ip', ['netns', 'exec', w.cli.name, 'openssl', 's_client', v, '-connect', `${w.srv4}:8080`, '-servername', 'shop.example', '-CAfile', jfe.caFile, '-verify_return_error', '-alpn', 'h2,http/1.1', '-ign_eof'], { input: 'GET / HTTP/1.0\r\n\r\n' });
      assert.equal(r.status, 0, `${v}: ${r.stderr}`);
      assert.match(r.stdout, v === '-tls1_2' ? /Protocol\s+: TLSv1\.2/ : /Protocol\s+: TLSv1\.3/);
      assert.match(r.stdout, /ALPN protocol: http\/1\.1/);
      assert.match(r.stdout, /Verify return code: 0 \(ok\)/);
      assert.match(r.stdout, /nginx-plain/);
    }
  });

  await t.test('h2-only clients get no ALPN, never h2', async () => {
    const r = await curl(['--cacert', jfe.caFile, '--http2-prior-knowledge', '-v', `https://${w.srv4}:8080/`]);
    assert.doesNotMatch(r.stderr, /ALPN: server accepted h2/);
  });

  await t.test("nginx's access log shows the client's own address", () => {
    const lines = fs.readFileSync(nginx.accessLog, 'utf8').trim().split('\n');
    assert.ok(lines.length >= 4, lines.join('\n'));
    for (const line of lines) {
      assert.match(line, /^(10\.77\.0\.1|fd77::1) 8080 /, `every request comes from the client, none from 127.0.0.1: ${line}`);
    }
    assert.ok(lines.some((l) => l.startsWith('fd77::1 ')));
  });

  await t.test('the leaf for the name is kept in the state directory', () => {
    assert.ok(fs.readdirSync(`${jfe.stateDir}/certs/internal`).includes('shop.example'));
  });
});
