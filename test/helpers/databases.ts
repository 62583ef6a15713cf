// SPDX-License-Identifier: MIT
// Real database servers from Debian packages, run inside a world's server
// namespace as their own unprivileged users, with data dirs in the world's
// temp dir: PostgreSQL (initdb + postgres) and MariaDB (mariadb-install-db +
// mariadbd). TLS off unless a test PKI is given.
import fs from 'node:fs';
import path from 'node:path';
import type { World } from './netns';
import type { TestPki } from './pki';
import { type Daemon, spawnIn, waitForPort } from './servers';
import { mustRun } from './spawn';

export const PG_BIN = '/usr/lib/postgresql/15/bin';

/** A dir in the world's temp dir owned by `user` (the temp dir itself made traversable). */
function ownedDir(w: World, name: string, user: string): string {
  fs.chmodSync(w.tmp, 0o711);
  const dir = path.join(w.tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  mustRun('chown', ['-R', `${user}:${user}`, dir]);
  fs.chmodSync(dir, 0o700);
  return dir;
}

/** Copies the service's cert and key where `user` may read them (PostgreSQL insists on 0600 keys). */
function certsFor(dir: string, user: string, pki: TestPki): { cert: string; key: string; ca: string } {
  const out = { cert: path.join(dir, 'server.crt'), key: path.join(dir, 'server.key'), ca: path.join(dir, 'ca.crt') };
  fs.copyFileSync(pki.cert, out.cert);
  fs.copyFileSync(pki.key, out.key);
  fs.copyFileSync(pki.caCert, out.ca);
  mustRun('chown', [`${user}:${user}`, out.cert, out.key, out.ca]);
  fs.chmodSync(out.key, 0o600);
  return out;
}

/** PostgreSQL 15 on `port` (all addresses), trust auth for TCP, ssl=off unless `tls`. */
export async function startPostgres(w: World, opts: { port?: number; tls?: TestPki } = {}): Promise<Daemon> {
  const port = opts.port ?? 5432;
  const data = ownedDir(w, `pg-${port}`, 'postgres');
  mustRun('runuser', ['-u', 'postgres', '--', path.join(PG_BIN, 'initdb'), '-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync']);
  fs.appendFileSync(path.join(data, 'pg_hba.conf'), 'host all all 0.0.0.0/0 trust\nhost all all ::/0 trust\n');
  const conf = [`listen_addresses = '*'`, `port = ${port}`, `unix_socket_directories = '${data}'`, 'fsync = off'];
  if (opts.tls) {
    const c = certsFor(data, 'postgres', opts.tls);
    conf.push('ssl = on', `ssl_cert_file = '${c.cert}'`, `ssl_key_file = '${c.key}'`);
  } else {
    conf.push('ssl = off');
  }
  fs.appendFileSync(path.join(data, 'postgresql.conf'), conf.join('\n') + '\n');
  const d = spawnIn(w, w.srv, ['runuser', '-u', 'postgres', '--', path.join(PG_BIN, 'postgres'), '-D', data], `postgres ${port}`);
  await waitForPort(w, w.srv4, port, 30_000);
  return d;
}

/** MariaDB on `port` with user jfe/jfe-pw from anywhere; TLS off unless `tls`. */
export async function startMariadb(w: World, opts: { port?: number; tls?: TestPki } = {}): Promise<Daemon & { socket: string }> {
  const port = opts.port ?? 3306;
  const dir = ownedDir(w, `mariadb-${port}`, 'mysql');
  const data = path.join(dir, 'data');
  const socket = path.join(dir, 'mysqld.sock');
  mustRun('mariadb-install-db', ['--no-defaults', '--user=mysql', `--datadir=${data}`, '--auth-root-authentication-method=socket', '--skip-test-db']);
  const args = [
    'mariadbd', '--no-defaults', '--user=mysql', `--datadir=${data}`, `--socket=${socket}`, `--port=${port}`,
    '--bind-address=*', `--pid-file=${path.join(dir, 'mysqld.pid')}`, '--skip-log-bin', '--innodb-buffer-pool-size=16M',
    '--skip-name-resolve',
  ];
  if (opts.tls) {
    const c = certsFor(dir, 'mysql', opts.tls);
    args.push(`--ssl-cert=${c.cert}`, `--ssl-key=${c.key}`, `--ssl-ca=${c.ca}`);
  } else {
    args.push('--skip-ssl');
  }
  const d = spawnIn(w, w.srv, args, `mariadbd ${port}`);
  await waitForPort(w, w.srv4, port, 60_000);
  w.exec(w.srv, ['mariadb', '--no-defaults', `--socket=${socket}`, '-u', 'root', '-e', "CREATE USER 'jfe'@'%' IDENTIFIED BY 'jfe-pw'; GRANT ALL ON *.* TO 'jfe'@'%';"]);
  return { ...d, socket };
}
