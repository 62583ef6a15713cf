// SPDX-License-Identifier: MIT
// Every fuzz target, in the order npm run fuzz runs them.
import type { FuzzTarget } from '../target';
import { acmeHttp01Target } from './acme-http01';
import { clientHelloTarget } from './client-hello';
import { firstBytesTarget } from './first-bytes';
import { imapTarget, pop3Target, smtpTarget } from './mail';
import { mysqlAuthShiftTarget, mysqlTarget } from './mysql';
import { packetParsersTarget } from './packet-parsers';
import { postgresTarget } from './postgres';
import { tlsAnswerTarget } from './tls-answer';
import { upgradeOpeningsTarget } from './upgrade-openings';

export const TARGETS: readonly FuzzTarget<unknown>[] = [
  clientHelloTarget,
  tlsAnswerTarget,
  acmeHttp01Target,
  firstBytesTarget,
  upgradeOpeningsTarget,
  packetParsersTarget,
  postgresTarget,
  mysqlTarget,
  mysqlAuthShiftTarget,
  smtpTarget,
  imapTarget,
  pop3Target,
];
