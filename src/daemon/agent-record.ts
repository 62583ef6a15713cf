// SPDX-License-Identifier: MIT
// The record of the agent running in a namespace, <run-dir>/<netns-inode>/agent.json:
// the primary's pid and start time (so a reused pid is never mistaken for it),
// its worker generation and slot count. A successor reads it to find whom to
// tell to drain; `jfe restart` reads it to find whom to reload.
import fs from 'node:fs';
import path from 'node:path';
import { runDirFor } from '../bpf/lock';

export interface AgentRecord {
  pid: number;
  /** Field 22 of /proc/<pid>/stat: ticks since boot; with the pid, unique for the boot. */
  startTime: string;
  /**
   * Which set of worker processes serves: 1 for the workers `jfe run` started,
   * one more for each in-place reload that succeeded (its new workers).
   */
  generation: number;
  /** Incremented by each reload attempted (SIGUSR2), successful or not. */
  reloads: number;
  /** Why the last reload failed, when it did; the old workers kept serving. */
  lastReloadError?: string;
  slots: number;
}

export function agentRecordPath(runDir: string, netnsIno: number): string {
  return path.join(runDirFor(runDir, netnsIno), 'agent.json');
}

/** The start time of a live process, or null when there is none with that pid. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z') return null;
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

export function readAgentRecord(file: string): AgentRecord | null {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as AgentRecord;
  } catch {
    return null;
  }
}

/** The record when it describes a live process other than this one (else null: none, or stale). */
export function readLiveAgent(file: string): AgentRecord | null {
  const r = readAgentRecord(file);
  if (!r || r.pid === process.pid || typeof r.pid !== 'number') return null;
  return processStartTime(r.pid) === r.startTime ? r : null;
}

export function writeAgentRecord(file: string, r: AgentRecord): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(r) + '\n', { mode: 0o600 });
  fs.renameSync(tmp, file);
}

/** Removes the record at exit, unless a successor has already replaced it with its own. */
export function removeAgentRecordIfMine(file: string): void {
  if (readAgentRecord(file)?.pid === process.pid) fs.rmSync(file, { force: true });
}
