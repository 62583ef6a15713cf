// SPDX-License-Identifier: MIT
// Guards the ACME allowance against a stranger, with the agent's default rate
// limits, `--domain '*.ok.test'` and a DNS that answers every name under it
// with this host (a wildcard record, so "does it point here?" passes): a
// flood of random names from one address gets one order at Pebble, its
// share; real names asked for by other clients still get theirs; every name
// put off is counted.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventually, leafFor } from '../helpers/clients';
import { startJfe } from '../helpers/jfe';
import { metricsArgs, scrapeMetrics } from '../helpers/metrics';
import { type World, createWorld } from '../helpers/netns';
import { isPebbleLeaf, startChallTestSrv, startPebble } from '../helpers/pebble';
import { requireRoot } from '../helpers/root';
import { startPlainNginx } from '../helpers/servers';
import { runSync } from '../helpers/spawn';

const FLOOD = 20;

/** Another IPv4 address of the client namespace, on the interface of its first: another client. */
function addClientAddress(w: World, addr: string): string {
  const line = runSync('ip', ['-n', w.cli.name, '-o', '-4', 'addr', 'show']).stdout.split('\n').find((l) => l.includes(` ${w.cli4}/`));
  const dev = line?.split(/\s+/)[1];
  assert.ok(dev, 'the client namespace\'s interface');
  runSync('ip', ['-n', w.cli.name, 'addr', 'add', `${addr}/24`, 'dev', dev]);
  return addr;
}

test('a flood of random names under a wildcard domain from one address takes its share of the ACME allowance, not all of it', { timeout: 300_000 }, async (t) => {
  if (!requireRoot(t, ['nginx', 'curl', 'pebble', 'pebble-challtestsrv'])) return;
  const w = createWorld(t);
  // challtestsrv answers every A query with the server's address: wildcard DNS.
  const dns = await startChallTestSrv(w);
  const pebble = await startPebble(w, dns.dnsServer);
  await startPlainNginx(w, [80, 443, 8080]);
  const honest1 = addClientAddress(w, '10.77.0.3');
  const honest2 = addClientAddress(w, '10.77.0.4');
  await startJfe(w, [
    '--issuer', 'acme', '--acme-directory', pebble.directory, '--acme-ca-file', pebble.httpsCaFile, '--challenge', 'http-01',
    '--domain', '*.ok.test', '--dns-server', dns.dnsServer, ...metricsArgs(w),
  ]);
  /** Polls until a handshake for `name` from `from` gets Pebble's leaf. */
  const pebbleLeafFrom = (name: string, from: string) =>
    eventually(async () => ((c) => (isPebbleLeaf(c) ? c : undefined))(await leafFor(w, name, 30_000, from)), 60_000, 250);

  // The stranger: one address, FLOOD random names, each handshake served (the internal CA's at worst).
  for (let i = 0; i < FLOOD; i++) {
    const name = `r${i}-${Math.random().toString(36).slice(2, 10)}.ok.test`;
    const leaf = await leafFor(w, name, 30_000, w.cli4);
    assert.ok(leaf.checkHost(name), `${name}: a certificate for the name`);
  }
  // Its one order (a quarter of the domain's 5 an hour) is placed, and no other.
  assert.ok(await eventually(async () => pebble.orders() >= 1, 30_000), 'the stranger\'s one order');
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(pebble.orders(), 1, 'one order for twenty names from one address');

  await t.test('real names from two other clients still get ACME certificates', async () => {
    assert.ok(await pebbleLeafFrom('www.ok.test', honest1), 'www.ok.test from a second client');
    assert.ok(await pebbleLeafFrom('shop.ok.test', honest2), 'shop.ok.test from a third client');
    assert.equal(pebble.orders(), 3);
  });

  await t.test('every name put off is counted, as the client\'s share', async () => {
    const m = await scrapeMetrics(w);
    assert.equal(m.get('jfe_acme_deferrals_total{reason="rate-limit-client"}'), FLOOD - 1);
    assert.equal(m.get('jfe_acme_deferrals_total{reason="rate-limit-domain"}'), 0);
  });
});
