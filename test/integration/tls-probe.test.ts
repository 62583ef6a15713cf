// SPDX-License-Identifier: MIT
// Guards the TLS-service probe (issue 13): the first TLS client of a destination
// has its ClientHello sent to the service, and only a TLS server's answer (a
// ServerHello, a HelloRetryRequest, an alert) makes jfe pass that destination's
// TLS through. Against real services in the server namespace, through the real
// jfe, for each: what the first TLS client, a plaintext client and a later TLS
// client get (the verdict is cached: the later one is not probed again).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import type net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { connectRaw, connectTls, readN, receiveAll, waitSteered } from '../helpers/clients';
import { startJfe } from '../helpers/jfe';
import { createWorld } from '../helpers/netns';
import { makeServicePki } from '../helpers/pki';
import { requireRoot } from '../helpers/root';
import { spawnNginx, startNodeServices } from '../helpers/servers';
import { run } from '../helpers/spawn';

const PORT = { echo: 9101, noise: 9102, truncated: 9103, late: 9104, nginxTls: 8443, nginxReject: 8444, nginxHrr: 8445 } as const;
/** The noise service's answer: 16 03, then random bytes. */
const NOISE_BYTES = 300;
/** A ServerHello cut off in its random (the record says 122 bytes follow), then a close. */
const TRUNCATED = Buffer.from(`160303007a020000760303${'ab'.repeat(32)}20${'cd'.repeat(8)}`, 'hex');
/** When the late service speaks: well after the probe gives up (--probe-timeout, 1 s by default). */
const LATE_MS = 3000;
/** Plaintext that looks like a TLS alert record (fatal handshake_failure). */
const ALERT_LOOKALIKE = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]);

/**
 * The small services, one node process in the server namespace; each appends its
 * name and the client's address to the connections file per accepted connection
 * (so a probe shows as one connection more), and answers EOF with EOF.
 *  echo       writes back every byte it reads
 *  noise      answers its first read with 16 03 and random bytes, then stays silent
 *  truncated  answers its first read with TRUNCATED and closes
 *  late       says "late-banner\n" LATE_MS after the connection opens, then echoes
 */
const SERVICES = `
const net = require('net'), fs = require('fs'), crypto = require('crypto');
const [connectionsFile] = process.argv.slice(-1);
function serve(name, port, handler) {
  net.createServer({ allowHalfOpen: true }, (s) => {
    fs.appendFileSync(connectionsFile, name + ' ' + s.remoteAddress + '\\n');
    s.on('error', () => {});
    s.on('end', () => s.end());
    handler(s);
  }).listen(port, '0.0.0.0');
}
serve('echo', ${PORT.echo}, (s) => s.on('data', (d) => s.write(d)));
serve('noise', ${PORT.noise}, (s) => s.once('data', () => s.write(Buffer.concat([Buffer.from([0x16, 0x03]), crypto.randomBytes(${NOISE_BYTES - 2})]))));
serve('truncated', ${PORT.truncated}, (s) => s.once('data', () => s.end(Buffer.from('${TRUNCATED.toString('hex')}', 'hex'))));
serve('late', ${PORT.late}, (s) => {
  const timer = setTimeout(() => { s.write('late-banner\\n'); s.on('data', (d) => s.write(d)); }, ${LATE_MS});
  s.on('close', () => clearTimeout(timer));
});
`;

test('the TLS-service probe: only a TLS server’s answer makes jfe pass a service’s TLS through', async (t) => {
  if (!requireRoot(t, ['nginx', 'curl', 'openssl'])) return;
  const w = createWorld(t);
  const pki = makeServicePki(path.join(w.tmp, 'pki'), 'nginx.test', w.srv4);
  const nginxDir = path.join(w.tmp, 'nginx');
  fs.mkdirSync(nginxDir);
  const certs = `ssl_certificate ${pki.cert}; ssl_certificate_key ${pki.key};`;
  spawnNginx(
    w,
    nginxDir,
    `server { listen ${PORT.nginxTls} ssl; ${certs} location / { return 200 "nginx-tls\\n"; } }
  server { listen ${PORT.nginxReject} ssl default_server; ssl_reject_handshake on; }
  server { listen ${PORT.nginxReject} ssl; server_name nginx.test; ${certs} location / { return 200 "nginx-named\\n"; } }
  server { listen ${PORT.nginxHrr} ssl; ${certs} ssl_protocols TLSv1.3; ssl_ecdh_curve X25519; location / { return 200 "nginx-hrr\\n"; } }`,
  );
  const { logFile: connectionsFile } = await startNodeServices(w, 'probe-services', SERVICES, Object.values(PORT));
  // One worker: one verdict cache, so "the later client is not probed" is the worker's, not luck.
  const jfe = await startJfe(w, [], { workers: 1 });
  for (const port of Object.values(PORT)) await waitSteered(w, port);
  const jfeCa = fs.readFileSync(jfe.caFile, 'utf8');
  const nginxCa = fs.readFileSync(pki.caCert, 'utf8');

  /** Connections from the client (jfe dials from its address), not the readiness checks made from the server namespace. */
  const connections = (name: string): number => fs.readFileSync(connectionsFile, 'utf8').split('\n').filter((l) => l === `${name} ${w.cli4}`).length;
  const assertConnections = (name: string, n: number, what: string): void => {
    assert.equal(connections(name), n, `${what}; the services saw:\n${fs.readFileSync(connectionsFile, 'utf8')}`);
  };
  /** A TLS session verified against jfe's CA: jfe terminated it. */
  const jfeTls = async (port: number, name: string) => (await connectTls(w.cli, w.srv4, port, jfeCa, name)).tls;
  const raw = (port: number) => connectRaw(w.cli, w.srv4, port);
  /**
   * Sends `line` and expects it back (the echo and late services echo). Once answered, the
   * service has counted this connection, and any probe before it: connection counts are exact.
   */
  const echoes = async (sock: net.Socket, line: string): Promise<void> => {
    sock.write(line);
    assert.equal((await readN(sock, line.length)).toString(), line);
  };

  await t.test('echo service, first TLS client: its own hello coming back is not TLS, so it gets jfe’s certificate', async () => {
    const s = await jfeTls(PORT.echo, 'echo.test');
    await echoes(s, 'ping\n');
    s.destroy();
    assertConnections('echo', 2, 'the probe, then the session');
  });

  await t.test('echo service, plaintext client: echoed as before', async () => {
    const s = await raw(PORT.echo);
    await echoes(s, 'hello\n');
    s.destroy();
  });

  await t.test('echo service, plaintext that looks like a TLS alert, echoed inside TLS: still not taken for TLS', async () => {
    const s = await jfeTls(PORT.echo, 'echo.test');
    s.write(ALERT_LOOKALIKE);
    assert.deepEqual(await readN(s, ALERT_LOOKALIKE.length), ALERT_LOOKALIKE);
    s.destroy();
  });

  await t.test('echo service, later TLS client: jfe’s certificate again, with no second probe', async () => {
    const before = connections('echo');
    const s = await jfeTls(PORT.echo, 'echo.test');
    await echoes(s, 'again\n');
    s.destroy();
    assertConnections('echo', before + 1, 'the later TLS client was not probed');
  });

  await t.test('noise service (16 03 and random bytes): the TLS client gets jfe’s certificate and the noise inside TLS; plaintext gets the noise', async () => {
    const s = await jfeTls(PORT.noise, 'noise.test');
    s.write('ping\n');
    const answer = await readN(s, NOISE_BYTES);
    assert.deepEqual([...answer.subarray(0, 2)], [0x16, 0x03]);
    s.destroy();
    assertConnections('noise', 2, 'the probe, then the session');

    const p = await raw(PORT.noise);
    p.write('hello\n');
    const got = await readN(p, NOISE_BYTES);
    assert.deepEqual([...got.subarray(0, 2)], [0x16, 0x03]);
    p.destroy();

    // The noise came back through the terminated session's first answer: the verdict stayed plain.
    const again = await jfeTls(PORT.noise, 'noise.test');
    again.write('ping\n');
    await readN(again, NOISE_BYTES);
    again.destroy();
    assertConnections('noise', 4, 'the later TLS client was not probed');
  });

  await t.test('truncated record, then a close: plaintext, so the TLS client gets jfe’s certificate and those bytes inside TLS', async () => {
    const s = await jfeTls(PORT.truncated, 'truncated.test');
    const got = receiveAll(s, 10_000);
    s.write('ping\n');
    const r = await got;
    assert.deepEqual(r.data, TRUNCATED);
    assert.deepEqual(r.ending, { kind: 'end' });
    assertConnections('truncated', 2, 'the probe, then the session');

    const p = await raw(PORT.truncated);
    const pgot = receiveAll(p, 10_000);
    p.write('hello\n');
    const pr = await pgot;
    assert.deepEqual(pr.data, TRUNCATED);
    assert.deepEqual(pr.ending, { kind: 'end' });

    const again = await jfeTls(PORT.truncated, 'truncated.test');
    const agot = receiveAll(again, 10_000);
    again.write('ping\n');
    assert.deepEqual((await agot).data, TRUNCATED);
    assertConnections('truncated', 4, 'the later TLS client was not probed');
  });

  await t.test('nginx with ssl: its own certificate reaches the first and later TLS clients; plaintext gets nginx’s own answer', async () => {
    const curl = (args: string[]) => run('ip', ['netns', 'exec', w.cli.name, 'curl', '-sS', '--max-time', '10', ...args]);
    for (let i = 0; i < 2; i++) {
      const r = await curl(['--cacert', pki.caCert, '--resolve', `nginx.test:${PORT.nginxTls}:${w.srv4}`, `https://nginx.test:${PORT.nginxTls}/`]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, 'nginx-tls\n');
    }
    await assert.rejects(jfeTls(PORT.nginxTls, 'nginx.test'), /certificate/i, 'jfe’s CA does not verify it: jfe did not terminate');
    const r = await curl([`http://${w.srv4}:${PORT.nginxTls}/`]);
    assert.match(r.stdout, /The plain HTTP request was sent to HTTPS port/);
  });

  await t.test('nginx answering an unknown name with an alert: the alert reaches the client, and the known name gets nginx’s certificate', async () => {
    await assert.rejects(connectTls(w.cli, w.srv4, PORT.nginxReject, nginxCa, 'unknown.test'), /unrecognized name/i);
    const s = (await connectTls(w.cli, w.srv4, PORT.nginxReject, nginxCa, 'nginx.test')).tls;
    const got = receiveAll(s, 10_000);
    s.write('GET / HTTP/1.0\r\nHost: nginx.test\r\n\r\n');
    assert.match((await got).data.toString('latin1'), /\r\n\r\nnginx-named\n$/);
    await assert.rejects(connectTls(w.cli, w.srv4, PORT.nginxReject, nginxCa, 'unknown.test'), /unrecognized name/i);
  });

  await t.test('nginx answering with a HelloRetryRequest (the client’s key share is P-256, nginx takes X25519 only): passed through', async () => {
    const r = await run(
      'ip',
      ['netns', 'exec', w.cli.name, 'openssl', 's_client', '-connect', `${w.srv4}:${PORT.nginxHrr}`, '-servername', 'nginx.test', '-groups', 'P-256:X25519', '-msg', '-CAfile', pki.caCert, '-verify_return_error'],
      { input: '' },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.match(/<<< TLS 1\.3, Handshake \[length [0-9a-f]+\], ServerHello/g)?.length, 2, 'a HelloRetryRequest, then the ServerHello');
    assert.match(r.stdout, /issuer=CN = nginx\.test test CA/);
    assert.match(r.stdout, /Verify return code: 0 \(ok\)/);
  });

  await t.test('a banner later than the probe: the TLS client gets jfe’s certificate and the banner inside TLS; plaintext gets the banner', async () => {
    const s = await jfeTls(PORT.late, 'late.test');
    assert.equal((await readN(s, 12, LATE_MS + 10_000)).toString(), 'late-banner\n');
    await echoes(s, 'ping\n');
    s.destroy();
    assertConnections('late', 2, 'the probe, then the session');

    const p = await raw(PORT.late);
    assert.equal((await readN(p, 12, LATE_MS + 10_000)).toString(), 'late-banner\n');
    await echoes(p, 'hello\n');
    p.destroy();

    const again = await jfeTls(PORT.late, 'late.test');
    assert.equal((await readN(again, 12, LATE_MS + 10_000)).toString(), 'late-banner\n');
    again.destroy();
    assertConnections('late', 4, 'the later TLS client was not probed');
  });

  await t.test('jfe is still running', () => {
    assert.equal(jfe.proc.exitCode, null);
    assert.equal(jfe.proc.signalCode, null);
  });
});
