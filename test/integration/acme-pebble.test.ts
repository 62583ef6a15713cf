// SPDX-License-Identifier: MIT
// Guards certificates from ACME against a real CA (Debian's Pebble): http-01
// and tls-alpn-01 answered by jfe itself, policy refusals that cost the CA
// nothing, one order per name across workers and handshakes, stored
// certificates reused after a restart, renewal when due, and the internal CA
// as the fallback while the CA is slow, with a later handshake served by ACME.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { eventually, leafFor } from '../helpers/clients';
import { type RunningJfe, startJfe } from '../helpers/jfe';
import { type World, createWorld } from '../helpers/netns';
import { isPebbleLeaf, startChallTestSrv, startPebble } from '../helpers/pebble';
import { requireRoot } from '../helpers/root';
import { spawnIn, startPlainNginx, waitForPort } from '../helpers/servers';
import { run } from '../helpers/spawn';

/** The operator's --ask endpoint, in the client namespace: 200 for names starting "ask-ok.", 403 for others; every request logged. */
async function startAskServer(w: World): Promise<{ url: string; log: string }> {
  const port = 8099;
  const log = path.join(w.tmp, 'ask.log');
  const script = path.join(w.tmp, 'ask-server.js');
  fs.writeFileSync(log, '');
  fs.writeFileSync(
    script,
    `require('node:http').createServer((req, res) => {
      require('node:fs').appendFileSync(${JSON.stringify(log)}, req.url + '\\n');
      const domain = new URL(req.url, 'http://x').searchParams.get('domain') || '';
      res.writeHead(domain.startsWith('ask-ok.') ? 200 : 403).end();
    }).listen(${port}, ${JSON.stringify(w.cli4)});`,
  );
  spawnIn(w, w.cli, [process.execPath, script], 'ask server');
  await waitForPort(w, w.cli4, port);
  return { url: `http://${w.cli4}:${port}/check`, log };
}


test('ACME certificates from Pebble, answered and guarded by jfe', { timeout: 300_000 }, async (t) => {
  if (!requireRoot(t, ['nginx', 'curl', 'pebble', 'pebble-challtestsrv', 'openssl'])) return;
  const w = createWorld(t);
  const dns = await startChallTestSrv(w);
  let pebble = await startPebble(w, dns.dnsServer, { validitySeconds: 30 * 86_400 });
  const nginx = await startPlainNginx(w, [80, 443, 8080]);
  const pebbleRoot = path.join(w.tmp, 'pebble-root.pem');
  fs.writeFileSync(pebbleRoot, await pebble.rootPem());
  for (const name of ['h1.acme.test', 't1.acme.test', 'c50.acme.test', 'slow.acme.test', 'n80.acme.test', 'n443.acme.test', 'fb.acme.test', 'down.acme.test']) await dns.addA(name, w.srv4);
  // The name policy's other checks: names the ask URL allows or refuses, and a name that points elsewhere.
  for (const name of ['ask-ok.asked.test', 'ask-no.asked.test']) await dns.addA(name, w.srv4);
  await dns.addA('far.acme.test', w.cli4);
  const ask = await startAskServer(w);

  // The policy resolves names through challtestsrv, as Pebble does; the rate limits are lifted (every test name shares acme.test).
  const policyArgs = ['--dns-server', dns.dnsServer, '--rate-limit-domain', 'off', '--ask', ask.url];
  const acmeArgs = (extra: string[]): string[] => [
    '--issuer', 'acme', '--acme-directory', pebble.directory, '--acme-ca-file', pebble.httpsCaFile,
    '--domain', '*.acme.test', '--acme-retry-min', '1s', ...policyArgs, ...extra,
  ];
  const curl = (name: string, ca: string) =>
    run('ip', ['netns', 'exec', w.cli.name, 'curl', '-sS', '--max-time', '20', '--cacert', ca, '--resolve', `${name}:8080:${w.srv4}`, `https://${name}:8080/`]);
  /** Polls until a handshake for `name` gets Pebble's leaf (the first ones may get the internal CA's). */
  const pebbleLeaf = (name: string) => eventually(async () => ((c) => (isPebbleLeaf(c) ? c : undefined))(await leafFor(w, name)), 60_000, 250);

  let jfe: RunningJfe = await startJfe(w, acmeArgs(['--challenge', 'http-01']));

  await t.test('http-01: jfe answers the validation on port 80; curl verifies with Pebble\'s root, no -k', async () => {
    const leaf = await pebbleLeaf('h1.acme.test');
    assert.ok(leaf, 'no Pebble certificate for h1.acme.test');
    const r = await curl('h1.acme.test', pebbleRoot);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'nginx-plain\n');
    assert.match(pebble.output(), /validate w\/ HTTP: http:\/\/h1\.acme\.test:80\/\.well-known\/acme-challenge\//);
    assert.doesNotMatch(fs.readFileSync(nginx.accessLog, 'utf8'), /acme-challenge/, 'the validation request reached the service');
  });

  await t.test('other requests on port 80 reach the service unchanged', async () => {
    const r = await run('ip', ['netns', 'exec', w.cli.name, 'curl', '-sS', '--max-time', '10', `http://${w.srv4}/.well-known/acme-challenge/not-a-pending-token`]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'nginx-plain\n');
    assert.match(fs.readFileSync(nginx.accessLog, 'utf8'), /GET \/\.well-known\/acme-challenge\/not-a-pending-token HTTP\/1\.1" 200/);
  });

  await t.test('a name outside --domain and an IP literal get the internal CA, and Pebble sees no order', async () => {
    const before = pebble.orders();
    const outside = await leafFor(w, 'www.elsewhere.test');
    assert.ok(!isPebbleLeaf(outside));
    assert.ok(outside.checkHost('www.elsewhere.test'));
    const r = await curl('www.elsewhere.test', jfe.caFile);
    assert.equal(r.status, 0, r.stderr);
    const byIp = await leafFor(w, null);
    assert.ok(!isPebbleLeaf(byIp));
    assert.ok(byIp.checkIP(w.srv4));
    await new Promise((res) => setTimeout(res, 1000));
    assert.equal(pebble.orders(), before, 'a refused name cost an order at Pebble');
  });

  await t.test('the name policy: the ask URL allows or refuses; a name pointing elsewhere is refused; only the allowed one is ordered', async () => {
    const before = pebble.orders();
    for (const name of ['ask-no.asked.test', 'far.acme.test']) {
      const leaf = await leafFor(w, name);
      assert.ok(!isPebbleLeaf(leaf), name);
      assert.ok(leaf.checkHost(name), `${name}: the internal CA's certificate for it`);
    }
    await jfe.waitForLog((l) => l.msg === 'certificate name refused by policy' && l.name === 'ask-no.asked.test' && l.reason === 'ask-refused');
    await jfe.waitForLog((l) => l.msg === 'certificate name refused by policy' && l.name === 'far.acme.test' && l.reason === 'dns-mismatch');
    await new Promise((res) => setTimeout(res, 1000));
    assert.equal(pebble.orders(), before, 'a refused name cost an order at Pebble');
    assert.ok(await pebbleLeaf('ask-ok.asked.test'), 'the name the ask URL allows is issued by Pebble');
    assert.equal(pebble.orders() - before, 1);
    const asked = fs.readFileSync(ask.log, 'utf8');
    assert.match(asked, /domain=ask-ok\.asked\.test/);
    assert.match(asked, /domain=ask-no\.asked\.test/);
    assert.doesNotMatch(asked, /acme\.test/, 'names within --domain are not asked about');
  });

  await t.test('50 concurrent first handshakes for one name: exactly one order', async () => {
    const before = pebble.orders();
    const leaves = await Promise.all(Array.from({ length: 50 }, () => leafFor(w, 'c50.acme.test')));
    assert.equal(leaves.length, 50);
    assert.ok(await pebbleLeaf('c50.acme.test'));
    assert.equal(pebble.orders() - before, 1);
  });

  await jfe.stop();
  jfe = await startJfe(w, acmeArgs(['--challenge', 'tls-alpn-01']));

  await t.test('restart: stored certificates are served at once, no new order', async () => {
    const before = pebble.orders();
    const leaf = await leafFor(w, 'h1.acme.test');
    assert.ok(isPebbleLeaf(leaf), 'the first handshake after a restart did not get the stored ACME certificate');
    const r = await curl('h1.acme.test', pebbleRoot);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(pebble.orders(), before);
  });

  await t.test('tls-alpn-01: jfe answers the validation on port 443', async () => {
    const before = pebble.orders();
    const leaf = await pebbleLeaf('t1.acme.test');
    assert.ok(leaf, 'no Pebble certificate for t1.acme.test');
    assert.equal(pebble.orders() - before, 1);
    // Pebble logs its HTTP validations only: with tls-alpn-01 pinned, there is none for t1.
    assert.match(pebble.output(), /Value:"t1\.acme\.test"/);
    assert.doesNotMatch(pebble.output(), /validate w\/ HTTP: http:\/\/t1\.acme\.test/);
    assert.doesNotMatch(fs.readFileSync(nginx.accessLog, 'utf8'), / 443 /, 'the validation handshake reached the service');
    const r = await curl('t1.acme.test', pebbleRoot);
    assert.equal(r.status, 0, r.stderr);
  });

  await jfe.stop();
  // Twenty-five days later (validity 30): every stored leaf is due.
  jfe = await startJfe(w, acmeArgs(['--acme-clock-offset', '25d', '--issue-wait', '2s']));

  await t.test('renewal when due: one order however many handshakes, the new leaf served without a restart', async () => {
    const before = pebble.orders();
    // Every handshake gets the held (due) leaf at once and may start the renewal: one order in all.
    const leaves = await Promise.all(Array.from({ length: 10 }, () => leafFor(w, 'h1.acme.test')));
    const old = leaves[0];
    assert.ok(old && leaves.every((c) => isPebbleLeaf(c) && c.serialNumber === old.serialNumber));
    await jfe.waitForLog((l) => l.msg === 'ACME certificate issued' && l.name === 'h1.acme.test', 30_000);
    assert.equal(pebble.orders() - before, 1);
    // Under the shifted clock the new leaf is due at once too: later handshakes may renew it again.
    const renewed = await eventually(async () => ((c) => (c.serialNumber !== old.serialNumber && isPebbleLeaf(c) ? c : undefined))(await leafFor(w, 'h1.acme.test')), 30_000, 250);
    assert.ok(renewed, 'the renewed certificate was not served');
  });

  await t.test('Pebble stalled: handshakes get the internal CA, the agent stays up, ACME serves once Pebble is back', async () => {
    pebble.proc.kill('SIGSTOP');
    let stalled = true;
    try {
      const leaf = await leafFor(w, 'slow.acme.test', 15_000);
      assert.ok(!isPebbleLeaf(leaf));
      assert.ok(leaf.checkHost('slow.acme.test'));
      const r = await curl('slow.acme.test', jfe.caFile);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(jfe.proc.exitCode, null);
    } finally {
      pebble.proc.kill('SIGCONT');
      stalled = false;
    }
    assert.ok(!stalled);
    const leaf = await pebbleLeaf('slow.acme.test');
    assert.ok(leaf, 'no ACME certificate after Pebble came back');
  });

  await t.test('Pebble down: handshakes get the internal CA, the agent stays up, a restarted Pebble issues', async () => {
    await pebble.stop();
    const leaf = await leafFor(w, 'down.acme.test', 15_000);
    assert.ok(!isPebbleLeaf(leaf));
    assert.ok(leaf.checkHost('down.acme.test'));
    assert.equal(jfe.proc.exitCode, null);
    // A new Pebble knows no account and has a new root: jfe registers again.
    pebble = await startPebble(w, dns.dnsServer, { validitySeconds: 30 * 86_400 });
    const issued = await pebbleLeaf('down.acme.test');
    assert.ok(issued, 'no ACME certificate after Pebble came back');
    const root = path.join(w.tmp, 'pebble-root-2.pem');
    fs.writeFileSync(root, await pebble.rootPem());
    const r = await curl('down.acme.test', root);
    assert.equal(r.status, 0, r.stderr);
  });

  // From here no service listens on 80 or 443: jfe steers them only while a challenge is pending.
  await jfe.stop();
  await nginx.stop();
  await startPlainNginx(w, [8080]);

  await t.test('no service on port 80: http-01 still validates, and port 80 refuses again afterwards', async () => {
    jfe = await startJfe(w, acmeArgs(['--challenge', 'auto']));
    const leaf = await pebbleLeaf('n80.acme.test');
    assert.ok(leaf, 'no Pebble certificate for n80.acme.test');
    assert.match(pebble.output(), /validate w\/ HTTP: http:\/\/n80\.acme\.test:80\//);
    const r = await run('ip', ['netns', 'exec', w.cli.name, 'curl', '-sS', '--max-time', '10', `http://${w.srv4}/`]);
    assert.equal(r.status, 7, `port 80 with no service should refuse: ${r.status} ${r.stderr}`);
    await jfe.stop();
  });

  await t.test('no service on port 443: tls-alpn-01 still validates', async () => {
    jfe = await startJfe(w, acmeArgs(['--challenge', 'tls-alpn-01']));
    const leaf = await pebbleLeaf('n443.acme.test');
    assert.ok(leaf, 'no Pebble certificate for n443.acme.test');
    assert.doesNotMatch(pebble.output(), /validate w\/ HTTP: http:\/\/n443\.acme\.test/);
  });

  await t.test('the first CA unreachable: the fallback directory issues, with external account binding', async () => {
    await jfe.stop();
    const hmac = 'zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W';
    const second = await startPebble(w, dns.dnsServer, { instance: 1, eabKeys: { 'kid-1': hmac } });
    const secondRoot = path.join(w.tmp, 'pebble-1-root.pem');
    fs.writeFileSync(secondRoot, await second.rootPem());
    const firstOrders = pebble.orders();
    jfe = await startJfe(w, [
      '--issuer', 'acme', '--acme-directory', `https://${w.cli4}:14999/dir`, '--acme-fallback-directory', second.directory,
      '--acme-eab-kid', 'kid-1', '--acme-eab-hmac-key', hmac, '--acme-ca-file', pebble.httpsCaFile,
      '--domain', '*.acme.test', '--acme-retry-min', '1s', ...policyArgs,
    ]);
    const leaf = await pebbleLeaf('fb.acme.test');
    assert.ok(leaf, 'no certificate from the fallback directory');
    const r = await curl('fb.acme.test', secondRoot);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(second.orders(), 1);
    assert.equal(pebble.orders(), firstOrders);
  });
});
