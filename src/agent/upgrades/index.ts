// SPDX-License-Identifier: MIT
// Every upgrade dialogue jfe knows. Adding a protocol: its factory goes here.
import { imapDialogue } from './imap';
import { mysqlDialogue } from './mysql';
import { pop3Dialogue } from './pop3';
import { postgresDialogue } from './postgres';
import { smtpDialogue } from './smtp';
import type { DialogueFactory } from './upgrade';

export const ALL_DIALOGUES: readonly DialogueFactory[] = [postgresDialogue, mysqlDialogue, smtpDialogue, imapDialogue, pop3Dialogue];
