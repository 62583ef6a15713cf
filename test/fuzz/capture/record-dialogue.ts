// SPDX-License-Identifier: MIT
// Records one real session for a dialogue target's corpus: listens, connects
// the first client to the real server, runs jfe's own upgrade dialogue
// between them (so a client sees STARTTLS offered by a server without TLS,
// as behind jfe), then keeps reading the client's ClientHello (or relays a
// passthrough) for a moment, and writes what each side sent to
// OUT.client and OUT.server. Run by capture-corpus.ts inside a server namespace.
// Usage: node record-dialogue.js PROTOCOL LISTEN_HOST LISTEN_PORT SERVER_PORT OUT
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import { ALL_DIALOGUES } from '../../../src/agent/upgrades';

async function main(): Promise<void> {
  // A client that never comes, or a server that never speaks, ends the capture empty-handed.
  setTimeout(() => {
    process.stderr.write('gave up after 20 s\n');
    process.exit(1);
  }, 20_000).unref();
  const [protocol, host, listenPort, serverPort, out] = process.argv.slice(2);
  const factory = ALL_DIALOGUES.find((f) => f.protocol === protocol);
  if (!factory || !host || !out) throw new Error('usage: record-dialogue.js PROTOCOL LISTEN_HOST LISTEN_PORT SERVER_PORT OUT');
  const server = net.createServer({ pauseOnConnect: true });
  server.listen(Number(listenPort), host);
  await once(server, 'listening');
  process.stdout.write('listening\n');
  const [client] = (await once(server, 'connection')) as [net.Socket];
  server.close();
  const upstream = net.connect(Number(serverPort), '127.0.0.1');
  await once(upstream, 'connect');
  upstream.pause();
  const sent = { client: [] as Buffer[], server: [] as Buffer[] };
  client.on('data', (d: Buffer) => sent.client.push(d));
  upstream.on('data', (d: Buffer) => sent.server.push(d));
  for (const s of [client, upstream]) s.on('error', () => undefined);

  const opener = factory.firstSpeaker === 'client' ? client : upstream;
  opener.resume();
  const [first] = (await once(opener, 'data')) as [Buffer];
  opener.pause();
  const outcome = await factory.create().run(client, upstream, first, AbortSignal.timeout(10_000));
  process.stdout.write(`${outcome.kind}\n`);
  if (outcome.kind === 'passthrough') {
    client.write(outcome.upstreamRest);
    upstream.write(outcome.clientRest);
    client.pipe(upstream);
    upstream.pipe(client);
  }
  // The ClientHello after a yes, or the plaintext session after a passthrough.
  client.resume();
  await new Promise((r) => setTimeout(r, 1000));
  fs.writeFileSync(`${out}.client`, Buffer.concat(sent.client));
  fs.writeFileSync(`${out}.server`, Buffer.concat(sent.server));
  client.destroy();
  upstream.destroy();
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`${String(e)}\n`);
    process.exit(1);
  },
);
