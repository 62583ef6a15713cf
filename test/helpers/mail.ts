// SPDX-License-Identifier: MIT
// Real mail servers from Debian packages inside a world's server namespace,
// in the foreground, with every file in the world's temp dir: exim4 (SMTP)
// and dovecot (IMAP, POP3), each with its own TLS off, or on with a test PKI.
import fs from 'node:fs';
import path from 'node:path';
import type { World } from './netns';
import type { TestPki } from './pki';
import { type Daemon, spawnIn, waitForPort } from './servers';
import { mustRun } from './spawn';

export interface Exim extends Daemon {
  /** exim's main log: one "<=" line per message received. */
  mainLog: string;
}

/** The servers drop root for their work: the world's temp dir must be traversable. */
function openUp(w: World): void {
  fs.chmodSync(w.tmp, 0o711);
}

/** exim4 on `port` (all addresses, both families) accepting mail for @mx.test, queued, never delivered. */
export async function startExim(w: World, opts: { port: number; tls?: TestPki; name: string }): Promise<Exim> {
  openUp(w);
  const dir = path.join(w.tmp, opts.name);
  for (const d of ['spool', 'log']) fs.mkdirSync(path.join(dir, d), { recursive: true });
  mustRun('chown', ['-R', 'Debian-exim:Debian-exim', dir]);
  const tls = opts.tls
    ? `tls_advertise_hosts = *\ntls_certificate = ${opts.tls.cert}\ntls_privatekey = ${opts.tls.key}\n`
    : 'tls_advertise_hosts =\n';
  if (opts.tls) for (const f of [opts.tls.cert, opts.tls.key]) fs.chmodSync(f, 0o644);
  const conf = `
keep_environment =
primary_hostname = mx.test
domainlist local_domains = mx.test
qualify_domain = mx.test
exim_user = Debian-exim
exim_group = Debian-exim
spool_directory = ${dir}/spool
log_file_path = ${dir}/log/%slog
pid_file_path = ${dir}/exim.pid
daemon_smtp_ports = ${opts.port}
${tls}
host_lookup =
rfc1413_hosts =
queue_only = true
acl_smtp_rcpt = acl_check_rcpt
begin acl
acl_check_rcpt:
  accept domains = +local_domains
  deny message = relay not permitted
begin routers
local:
  driver = accept
  domains = +local_domains
  transport = nowhere
begin transports
nowhere:
  driver = appendfile
  file = /dev/null
`;
  const confFile = path.join(dir, 'exim.conf');
  fs.writeFileSync(confFile, conf);
  const d = spawnIn(w, w.srv, ['exim4', '-C', confFile, '-bdf'], `exim ${opts.name}`);
  await waitForPort(w, w.srv4, opts.port);
  return { ...d, mainLog: path.join(dir, 'log', 'mainlog') };
}

export interface Dovecot extends Daemon {
  user: string;
  password: string;
  /** A line that only the stored message contains. */
  marker: string;
}

/** dovecot with IMAP on imapPort and POP3 on pop3Port; user alice with one message in her maildir. */
export async function startDovecot(w: World, opts: { imapPort: number; pop3Port: number; tls?: TestPki; name: string }): Promise<Dovecot> {
  openUp(w);
  const dir = path.join(w.tmp, opts.name);
  const user = 'alice';
  const password = 'wonderland';
  const marker = `jfe-marker-${opts.name}-${process.pid}`;
  const maildir = path.join(dir, 'mail', user);
  for (const d of ['cur', 'new', 'tmp']) fs.mkdirSync(path.join(maildir, d), { recursive: true });
  fs.writeFileSync(
    path.join(maildir, 'new', `1700000000.M1P1.${opts.name}`),
    `From: bob@mx.test\r\nTo: alice@mx.test\r\nSubject: hello\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <1@mx.test>\r\n\r\n${marker}\r\n`,
  );
  mustRun('chown', ['-R', 'mail:mail', path.join(dir, 'mail')]);
  fs.mkdirSync(path.join(dir, 'run'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'passwd'), `${user}:{PLAIN}${password}::::::\n`);
  const tls = opts.tls ? `ssl = yes\nssl_cert = <${opts.tls.cert}\nssl_key = <${opts.tls.key}\n` : 'ssl = no\n';
  const conf = `
base_dir = ${dir}/run
state_dir = ${dir}/run/state
instance_name = ${w.id}-${opts.name}
protocols = imap pop3
listen = *, ::
${tls}
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = ${dir}/dovecot.log
mail_location = maildir:${dir}/mail/%u
first_valid_uid = 1
passdb {
  driver = passwd-file
  args = scheme=PLAIN ${dir}/passwd
}
userdb {
  driver = static
  args = uid=mail gid=mail home=${dir}/mail/%u
}
service imap-login {
  inet_listener imap {
    port = ${opts.imapPort}
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    port = ${opts.pop3Port}
  }
  inet_listener pop3s {
    port = 0
  }
}
service anvil {
  chroot =
}
`;
  const confFile = path.join(dir, 'dovecot.conf');
  fs.writeFileSync(confFile, conf);
  const d = spawnIn(w, w.srv, ['dovecot', '-F', '-c', confFile], `dovecot ${opts.name}`);
  await waitForPort(w, w.srv4, opts.imapPort);
  await waitForPort(w, w.srv4, opts.pop3Port);
  return { ...d, user, password, marker };
}
