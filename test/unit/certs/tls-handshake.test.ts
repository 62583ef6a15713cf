// SPDX-License-Identifier: MIT
// Guards the end result: a real TLS client that trusts only the internal root
// completes a verified handshake against contexts from the CertManager, by
// DNS name (SNI) and by IP address (no SNI), on loopback.
import assert from 'node:assert/strict';
import net from 'node:net';
import { type TestContext, test } from 'node:test';
import tls from 'node:tls';
import { type CertManager, openCertManager } from '../../../src/certs/cert-manager';
import { bufferLogger, tempDir } from './temp-state';

/**
 * A terminating server shaped like the agent: a paused TCP socket, the
 * context for the dialled address chosen first, SNI switching it when sent.
 */
async function startServer(t: TestContext, manager: CertManager, host: string): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ pauseOnConnect: true }, (raw) => {
    sockets.add(raw);
    raw.on('close', () => sockets.delete(raw));
    raw.on('error', () => raw.destroy());
    const localAddress = raw.localAddress ?? '';
    manager.contextFor({ servername: null, localAddress }).then(
      (secureContext) => {
        const tlsSocket = new tls.TLSSocket(raw, {
          isServer: true,
          secureContext,
          SNICallback: (servername, cb) => {
            manager.contextFor({ servername, localAddress }).then(
              (ctx) => cb(null, ctx),
              (err: Error) => cb(err),
            );
          },
        });
        tlsSocket.on('error', () => raw.destroy());
        tlsSocket.on('secure', () => tlsSocket.end('hello\n'));
      },
      () => raw.destroy(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });
  return (server.address() as net.AddressInfo).port;
}

function fetchOverTls(opts: tls.ConnectionOptions): Promise<{ body: string; peer: tls.PeerCertificate }> {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ ...opts, rejectUnauthorized: true });
    let body = '';
    sock.setEncoding('utf8');
    sock.on('secureConnect', () => {
      const peer = sock.getPeerCertificate();
      sock.on('data', (d: string) => (body += d));
      sock.on('end', () => resolve({ body, peer }));
    });
    sock.on('error', reject);
  });
}

async function openManager(t: TestContext): Promise<{ manager: CertManager; root: string }> {
  const { manager, ca } = await openCertManager({ stateDir: tempDir(t), log: bufferLogger() });
  return { manager, root: ca.rootPem() };
}

test('TLS by DNS name: SNI selects a leaf that verifies against the root', async (t) => {
  const { manager, root } = await openManager(t);
  const port = await startServer(t, manager, '127.0.0.1');
  const { body, peer } = await fetchOverTls({ host: '127.0.0.1', port, servername: 'svc.example', ca: root });
  assert.equal(body, 'hello\n');
  assert.equal(peer.subjectaltname, 'DNS:svc.example');
  assert.equal(peer.serialNumber.toUpperCase(), manager.describe('svc.example')?.serial);
});

test('TLS by IP without SNI: the dialled address certificate passes default identity checks', async (t) => {
  const { manager, root } = await openManager(t);
  const port = await startServer(t, manager, '127.0.0.1');
  // Node sends no SNI for an IP host; checkServerIdentity then checks the IP SAN.
  const { body, peer } = await fetchOverTls({ host: '127.0.0.1', port, ca: root });
  assert.equal(body, 'hello\n');
  assert.equal(peer.subjectaltname, 'IP Address:127.0.0.1');
});

test('TLS over IPv6 loopback without SNI', async (t) => {
  const { manager, root } = await openManager(t);
  let port: number;
  try {
    port = await startServer(t, manager, '::1');
  } catch (err) {
    t.skip(`no IPv6 loopback here: ${(err as Error).message}`);
    return;
  }
  const { body, peer } = await fetchOverTls({ host: '::1', port, ca: root });
  assert.equal(body, 'hello\n');
  assert.equal(peer.subjectaltname, 'IP Address:0:0:0:0:0:0:0:1');
});

test('a client that does not trust the root refuses the handshake', async (t) => {
  const { manager } = await openManager(t);
  const port = await startServer(t, manager, '127.0.0.1');
  await assert.rejects(fetchOverTls({ host: '127.0.0.1', port, servername: 'svc.example' }), (err: NodeJS.ErrnoException) =>
    /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|unable to get local issuer/i.test(`${err.code} ${err.message}`),
  );
});

test('a client checking another name refuses the certificate', async (t) => {
  const { manager, root } = await openManager(t);
  const port = await startServer(t, manager, '127.0.0.1');
  await assert.rejects(
    fetchOverTls({ host: '127.0.0.1', port, servername: 'svc.example', ca: root, checkServerIdentity: (_h, cert) => tls.checkServerIdentity('other.example', cert) }),
    (err: NodeJS.ErrnoException) => err.code === 'ERR_TLS_CERT_ALTNAME_INVALID',
  );
});
