// SPDX-License-Identifier: MIT
// Every upgrade dialogue jfe knows. Adding a protocol: its factory goes here.
import { mysqlDialogue } from './mysql';
import { postgresDialogue } from './postgres';
import type { DialogueFactory } from './upgrade';

export const ALL_DIALOGUES: readonly DialogueFactory[] = [postgresDialogue, mysqlDialogue];
