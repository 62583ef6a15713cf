// SPDX-License-Identifier: MIT
// A test PKI made with the openssl CLI: a CA and a leaf for a service that
// terminates TLS itself, so tests can tell its certificate from jfe's.
import fs from 'node:fs';
import path from 'node:path';
import { mustRun } from './spawn';

export interface TestPki {
  caCert: string;
  cert: string;
  key: string;
}

export function makeServicePki(dir: string, name: string, ip: string): TestPki {
  fs.mkdirSync(dir, { recursive: true });
  const p = (f: string): string => path.join(dir, f);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  mustRun('openssl', ['req', '-x509', ...ec, '-keyout', p('ca.key'), '-out', p('ca.crt'), '-days', '2', '-subj', `/CN=${name} test CA`]);
  mustRun('openssl', ['req', ...ec, '-keyout', p('leaf.key'), '-out', p('leaf.csr'), '-subj', `/CN=${name}`]);
  fs.writeFileSync(p('leaf.ext'), `subjectAltName=DNS:${name},IP:${ip}\nextendedKeyUsage=serverAuth\n`);
  mustRun('openssl', ['x509', '-req', '-in', p('leaf.csr'), '-CA', p('ca.crt'), '-CAkey', p('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', p('leaf.ext'), '-out', p('leaf.crt')]);
  return { caCert: p('ca.crt'), cert: p('leaf.crt'), key: p('leaf.key') };
}
