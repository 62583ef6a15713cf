// SPDX-License-Identifier: MIT
// Guards the metrics against a scanner's handshakes: a client that completes
// a TLS handshake with jfe and then closes or resets before sending a byte is
// counted (as a session without data, or, when it left before jfe finished
// its side, as a handshake the client closed), never nowhere; the service
// keeps serving honest clients, who are not counted as such.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { connectTls } from '../helpers/clients';
import { startJfe } from '../helpers/jfe';
import { type Sample, metricsArgs, scrapeMetrics } from '../helpers/metrics';
import { createWorld } from '../helpers/netns';
import { requireRoot } from '../helpers/root';
import { startNginx } from '../helpers/servers';
import { run } from '../helpers/spawn';

const WITHOUT_DATA = 'jfe_tls_sessions_without_data_total';
const CLIENT_CLOSED = 'jfe_tls_handshake_failures_total{reason="client-closed"}';

test('a scanner\'s handshakes (openssl s_client, resets after the handshake) are counted; honest clients are served', { timeout: 120_000 }, async (t) => {
  if (!requireRoot(t, ['nginx', 'curl', 'openssl'])) return;
  const w = createWorld(t);
  await startNginx(w);
  const jfe = await startJfe(w, metricsArgs(w));
  const ca = fs.readFileSync(jfe.caFile, 'utf8');
  const curl = async (): Promise<void> => {
    const r = await run('ip', ['netns', 'exec', w.cli.name, 'curl', '-sS', '--max-time', '10', '--cacert', jfe.caFile, `https://${w.srv4}:8080/`]);
    assert.equal(r.stdout, 'nginx-plain\n', r.stderr);
  };
  await curl(); // the probe of nginx and the address's certificate, before the measurements
  const counted = (s: Sample): number => (s.get(WITHOUT_DATA) ?? 0) + (s.get(CLIENT_CLOSED) ?? 0);

  await t.test('openssl s_client: a full handshake, then a close with no byte sent', async () => {
    const before = await scrapeMetrics(w);
    for (let i = 0; i < 3; i++) {
      const r = await run('ip', ['netns', 'exec', w.cli.name, 'openssl', 's_client', '-connect', `${w.srv4}:8080`, '-servername', `scan${i}.example`], { input: '', timeoutMs: 15_000 });
      assert.match(r.stdout, /Verify return code|SSL-Session|New, TLSv1\.3/, r.stderr);
    }
    await new Promise((r) => setTimeout(r, 500));
    const after = await scrapeMetrics(w);
    assert.equal(counted(after) - counted(before), 3);
  });

  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    await t.test(`${version}: a full handshake, then a TCP reset`, async () => {
      const before = await scrapeMetrics(w);
      for (let i = 0; i < 3; i++) {
        const c = await connectTls(w.cli, w.srv4, 8080, ca, undefined, 10_000, { maxVersion: version });
        c.raw.resetAndDestroy();
      }
      await new Promise((r) => setTimeout(r, 500));
      const after = await scrapeMetrics(w);
      assert.equal(counted(after) - counted(before), 3, `${WITHOUT_DATA} and ${CLIENT_CLOSED} moved by ${counted(after) - counted(before)}`);
    });
  }

  await t.test('honest clients: served, and not counted as scanners', async () => {
    const before = await scrapeMetrics(w);
    for (let i = 0; i < 3; i++) await curl();
    const after = await scrapeMetrics(w);
    assert.equal(counted(after) - counted(before), 0);
  });
});
