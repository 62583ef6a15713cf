// SPDX-License-Identifier: MIT
// Captures the fuzz corpus's real sessions from real clients and servers on
// this machine (as root, for the namespaces): `node --test
// dist/test/fuzz/capture/capture-corpus.js`. Not part of npm test: the corpus
// it writes is committed, and test/fuzz/corpus/README.md says what each file is.
// Re-capturing changes randoms, key shares and timestamps, never the shapes.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { startMariadb, startPostgres } from '../../helpers/databases';
import { startDovecot, startExim } from '../../helpers/mail';
import { createWorld } from '../../helpers/netns';
import { requireRoot } from '../../helpers/root';
import { spawnIn } from '../../helpers/servers';
import { REPO_ROOT, run } from '../../helpers/spawn';
import { selfSigned } from '../../unit/agent/loopback';
import { CORPUS_ROOT } from '../target';
import { CAPTURED_TOKEN } from '../targets/acme-http01';

const HELLOS = path.join(REPO_ROOT, 'test', 'fixtures', 'client-hello');

interface DialogueCapture {
  protocol: 'smtp' | 'imap' | 'pop3' | 'postgres' | 'mysql';
  name: string;
  serverPort: number;
  client: (host: string, port: number) => string[];
}

const MAIL = ['--to', 'alice@mx.test', '--from', 'bob@mx.test', '--timeout', '5', '--server'];

const DIALOGUES: DialogueCapture[] = [
  { protocol: 'smtp', name: 'swaks-starttls', serverPort: 25, client: (h, p) => ['swaks', '--tls', ...MAIL, `${h}:${p}`] },
  { protocol: 'smtp', name: 'swaks-plain', serverPort: 25, client: (h, p) => ['swaks', ...MAIL, `${h}:${p}`] },
  { protocol: 'smtp', name: 'openssl-starttls', serverPort: 25, client: (h, p) => ['openssl', 's_client', '-starttls', 'smtp', '-connect', `${h}:${p}`] },
  { protocol: 'imap', name: 'openssl-starttls', serverPort: 143, client: (h, p) => ['openssl', 's_client', '-starttls', 'imap', '-connect', `${h}:${p}`] },
  { protocol: 'imap', name: 'curl-starttls', serverPort: 143, client: (h, p) => ['curl', '-s', '--ssl-reqd', '-k', '-u', 'alice:wonderland', `imap://${h}:${p}/`] },
  { protocol: 'imap', name: 'curl-plain', serverPort: 143, client: (h, p) => ['curl', '-s', '-u', 'alice:wonderland', `imap://${h}:${p}/INBOX`] },
  { protocol: 'pop3', name: 'openssl-stls', serverPort: 110, client: (h, p) => ['openssl', 's_client', '-starttls', 'pop3', '-connect', `${h}:${p}`] },
  { protocol: 'pop3', name: 'curl-stls', serverPort: 110, client: (h, p) => ['curl', '-s', '--ssl-reqd', '-k', '-u', 'alice:wonderland', `pop3://${h}:${p}/`] },
  { protocol: 'pop3', name: 'curl-plain', serverPort: 110, client: (h, p) => ['curl', '-s', '-u', 'alice:wonderland', `pop3://${h}:${p}/1`] },
  { protocol: 'postgres', name: 'psql-require', serverPort: 5432, client: (h, p) => ['psql', `host=${h} port=${p} user=postgres dbname=postgres sslmode=require connect_timeout=5`, '-c', 'SELECT 1'] },
  { protocol: 'postgres', name: 'psql-disable', serverPort: 5432, client: (h, p) => ['psql', `host=${h} port=${p} user=postgres dbname=postgres sslmode=disable connect_timeout=5`, '-c', 'SELECT 1'] },
  { protocol: 'mysql', name: 'mariadb-ssl', serverPort: 3306, client: (h, p) => ['mariadb', '--no-defaults', '-h', h, '-P', String(p), '-u', 'jfe', '-pjfe-pw', '--ssl', '--connect-timeout=5', '-e', 'SELECT 1'] },
  { protocol: 'mysql', name: 'mariadb-plain', serverPort: 3306, client: (h, p) => ['mariadb', '--no-defaults', '-h', h, '-P', String(p), '-u', 'jfe', '-pjfe-pw', '--skip-ssl', '--connect-timeout=5', '-e', 'SELECT 1'] },
];

test('dialogue sessions: real clients, real servers without TLS, jfe\'s dialogue between them', async (t) => {
  if (!requireRoot(t, ['swaks', 'curl', 'psql', 'mariadb', 'exim4', 'dovecot'])) return;
  const w = createWorld(t);
  await startExim(w, { port: 25, name: 'exim' });
  await startDovecot(w, { imapPort: 143, pop3Port: 110, name: 'dovecot' });
  await startPostgres(w, { port: 5432 });
  await startMariadb(w, { port: 3306 });
  let port = 7000;
  for (const c of DIALOGUES) {
    const dir = path.join(CORPUS_ROOT, c.protocol);
    fs.mkdirSync(dir, { recursive: true });
    const listen = port++;
    const recorder = spawnIn(w, w.srv, [process.execPath, path.join(__dirname, 'record-dialogue.js'), c.protocol, w.srv4, String(listen), String(c.serverPort), path.join(dir, c.name)], `recorder ${c.name}`, { stdout: true });
    for (let i = 0; i < 100 && !recorder.output().includes('listening'); i++) await new Promise((r) => setTimeout(r, 50));
    const r = await run('ip', ['netns', 'exec', w.cli.name, ...c.client(w.srv4, listen)], { timeoutMs: 15_000 });
    if (recorder.proc.exitCode === null) await once(recorder.proc, 'exit');
    process.stdout.write(`${c.protocol}/${c.name}: ${recorder.output().trim().split('\n').pop()} (client exit ${r.status}: ${r.stderr.trim().split('\n').pop()})\n`);
  }
  deriveAuthShift(path.join(CORPUS_ROOT, 'mysql', 'mariadb-plain'), path.join(CORPUS_ROOT, 'mysql-auth-shift', 'mariadb-login.events'));
});

/** MySQL packets of a stream: 3-byte little-endian length, sequence number, payload. */
function packets(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off + 4 <= b.length; ) {
    const end = Math.min(b.length, off + 4 + b.readUIntLE(off, 3));
    out.push(b.subarray(off, end));
    off = end;
  }
  return out;
}

/**
 * The plaintext login of `session` as the sequence shift sees it inside TLS:
 * the client's packets one sequence number up (its SSLRequest took seq 1),
 * the server's as they are, in the order of the login (response, OK, query,
 * result). Written as events: "c" or "s", a 4-byte length, the bytes.
 */
function deriveAuthShift(session: string, out: string): void {
  const [response, ...commands] = packets(fs.readFileSync(`${session}.client`));
  const [, ok, ...results] = packets(fs.readFileSync(`${session}.server`));
  if (!response || !ok) throw new Error(`${session}: no login in the capture`);
  const inTls = Buffer.from(response);
  inTls[3] = (inTls[3] ?? 0) + 1;
  const event = (side: string, bytes: Buffer): Buffer => {
    const h = Buffer.alloc(5);
    h.write(side, 0, 'latin1');
    h.writeUInt32BE(bytes.length, 1);
    return Buffer.concat([h, bytes]);
  };
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, Buffer.concat([event('c', inTls), event('s', ok), ...commands.map((c) => event('c', c)), event('s', Buffer.concat(results))]));
  process.stdout.write(`${path.basename(out)}: derived from ${path.basename(session)}\n`);
}

/** Listens on loopback; resolves with the first `ms` of bytes the first client sends (answering `reply` once a request's head is in). */
async function recordClient(run: (port: number) => Promise<unknown>, ms: number, reply = ''): Promise<Buffer> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const got: Buffer[] = [];
  server.once('connection', (s: net.Socket) => {
    s.on('error', () => undefined);
    s.on('data', (d: Buffer) => {
      got.push(d);
      if (reply && Buffer.concat(got).includes('\r\n\r\n')) s.end(reply);
    });
  });
  const done = run(port);
  await new Promise((r) => setTimeout(r, ms));
  server.close();
  await done;
  return Buffer.concat(got);
}

/** Sends `hello` to what listens on `port` and resolves with what it answers within `ms`. */
async function answerTo(port: number, hello: Buffer, ms: number): Promise<Buffer> {
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => undefined);
  await once(s, 'connect');
  const got: Buffer[] = [];
  s.on('data', (d: Buffer) => got.push(d));
  s.write(hello);
  await new Promise((r) => setTimeout(r, ms));
  s.destroy();
  return Buffer.concat(got);
}

async function waitPort(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listens on ${port}`);
}

/** Starts argv (a server on loopback `port`), answers `hello` with it, stops it. */
async function serverAnswer(argv: string[], port: number, hello: string): Promise<Buffer> {
  const proc = spawn(argv[0] as string, argv.slice(1), { stdio: ['pipe', 'ignore', 'ignore'] });
  try {
    await waitPort(port);
    return await answerTo(port, fs.readFileSync(path.join(HELLOS, hello)), 700);
  } finally {
    proc.kill('SIGKILL');
    await once(proc, 'exit');
  }
}

test('TLS answers: real servers answering real ClientHellos', async (t) => {
  if (!requireRoot(t, ['openssl', 'python3'])) return;
  const dir = path.join(CORPUS_ROOT, 'tls-answer');
  const tmp = fs.mkdtempSync('/tmp/jfe-capture-');
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const pem = selfSigned('capture.test', 'DNS:capture.test');
  const cert = path.join(tmp, 'cert.pem');
  const key = path.join(tmp, 'key.pem');
  fs.writeFileSync(cert, pem.cert);
  fs.writeFileSync(key, pem.key);
  const sServer = (port: number, ...opts: string[]) => ['openssl', 's_server', '-accept', `127.0.0.1:${port}`, '-cert', cert, '-key', key, ...opts];
  const captures: [string, string[], number, string][] = [
    ['openssl-tls13.tls.bin', sServer(7101), 7101, 'curl-http2-sni.bin'],
    ['openssl-tls12.tls.bin', sServer(7102, '-tls1_2'), 7102, 'openssl-tls12-sni.bin'],
    ['openssl-hello-retry.tls.bin', sServer(7103, '-groups', 'secp384r1'), 7103, 'openssl-tls13-sni.bin'],
    ['openssl-alert-protocol-version.tls.bin', sServer(7104, '-tls1_3'), 7104, 'openssl-tls12-sni.bin'],
    ['openssl-alert-unrecognized-name.tls.bin', sServer(7105, '-servername', 'other.test', '-servername_fatal', '-cert2', cert, '-key2', key), 7105, 'openssl-tls13-sni.bin'],
    ['python-http-server.plain.bin', ['python3', '-m', 'http.server', '--bind', '127.0.0.1', '7107'], 7107, 'python-ssl.bin'],
  ];
  for (const [name, argv, port, hello] of captures) {
    const answer = await serverAnswer(argv, port, hello);
    fs.writeFileSync(path.join(dir, name), answer);
    process.stdout.write(`tls-answer/${name}: ${answer.length} bytes, starting ${answer.subarray(0, 6).toString('hex')}\n`);
  }
});

test('http-01: real HTTP clients asking for a challenge and for a page', async () => {
  const dir = path.join(CORPUS_ROOT, 'acme-http01');
  const reply = 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n';
  const token = CAPTURED_TOKEN;
  const captures: [string, (port: number) => string[]][] = [
    ['curl-challenge.bin', (p) => ['curl', '-s', `http://127.0.0.1:${p}/.well-known/acme-challenge/${token}`]],
    ['wget-challenge.bin', (p) => ['wget', '-q', '-O', '/dev/null', `http://127.0.0.1:${p}/.well-known/acme-challenge/${token}`]],
    ['python-challenge.bin', (p) => ['python3', '-c', `import urllib.request\ntry: urllib.request.urlopen('http://127.0.0.1:${p}/.well-known/acme-challenge/${token}')\nexcept Exception: pass`]],
    ['curl-index.plain.bin', (p) => ['curl', '-s', `http://127.0.0.1:${p}/`]],
    ['curl-challenge-dir.plain.bin', (p) => ['curl', '-s', `http://127.0.0.1:${p}/.well-known/acme-challenge/`]],
  ];
  for (const [name, argv] of captures) {
    const bytes = await recordClient((p) => run(argv(p)[0] as string, argv(p).slice(1), { timeoutMs: 5000 }), 700, reply);
    fs.writeFileSync(path.join(dir, name), bytes);
    process.stdout.write(`acme-http01/${name}: ${bytes.length} bytes\n`);
  }
});

test('ClientHellos of clients the fixtures lack', async () => {
  const dir = path.join(CORPUS_ROOT, 'client-hello');
  fs.mkdirSync(dir, { recursive: true });
  const captures: [string, (port: number) => string[]][] = [
    ['redis-cli.bin', (p) => ['redis-cli', '--tls', '--insecure', '--sni', 'redis.example.test', '-h', '127.0.0.1', '-p', String(p), 'PING']],
    ['wget.bin', (p) => ['wget', '-q', '--no-check-certificate', '-O', '/dev/null', '-t', '1', `https://127.0.0.1:${p}/`]],
  ];
  for (const [name, argv] of captures) {
    const bytes = await recordClient((p) => run(argv(p)[0] as string, argv(p).slice(1), { timeoutMs: 3000 }), 700);
    fs.writeFileSync(path.join(dir, name), bytes);
    process.stdout.write(`client-hello/${name}: ${bytes.length} bytes\n`);
  }
});
