// SPDX-License-Identifier: MIT
// The agent record: a successor finds the live agent by pid AND start time, so
// a stale record (process gone, or pid reused) is never taken for a running agent.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { agentRecordPath, processStartTime, readLiveAgent, removeAgentRecordIfMine, writeAgentRecord } from '../../../src/daemon/agent-record';

function tmpRunDir(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jfe-record-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('a live process with the recorded start time is found; a wrong start time or a dead pid is not', async (t) => {
  const file = agentRecordPath(tmpRunDir(t), 1234);
  const child = spawn('sleep', ['30']);
  t.after(() => child.kill('SIGKILL'));
  const pid = child.pid ?? 0;
  const startTime = processStartTime(pid);
  assert.match(startTime ?? '', /^\d+$/);
  writeAgentRecord(file, { pid, startTime: startTime ?? '', generation: 1, reloads: 0, slots: 2 });
  assert.equal(readLiveAgent(file)?.pid, pid);
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);

  writeAgentRecord(file, { pid, startTime: String(Number(startTime) + 1), generation: 1, reloads: 0, slots: 2 });
  assert.equal(readLiveAgent(file), null, 'same pid, another start time: a reused pid');

  writeAgentRecord(file, { pid, startTime: startTime ?? '', generation: 1, reloads: 0, slots: 2 });
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  assert.equal(readLiveAgent(file), null, 'the recorded process is gone');
});

test('our own record is not "another agent", and is removed at exit only while it is ours', (t) => {
  const file = agentRecordPath(tmpRunDir(t), 1);
  assert.equal(readLiveAgent(file), null, 'no record');
  writeAgentRecord(file, { pid: process.pid, startTime: processStartTime(process.pid) ?? '', generation: 0, reloads: 0, slots: 1 });
  assert.equal(readLiveAgent(file), null);
  removeAgentRecordIfMine(file);
  assert.equal(fs.existsSync(file), false);
  writeAgentRecord(file, { pid: 1, startTime: processStartTime(1) ?? '', generation: 0, reloads: 0, slots: 1 });
  removeAgentRecordIfMine(file);
  assert.equal(fs.existsSync(file), true, "a successor's record stays");
  fs.writeFileSync(file, 'not json');
  assert.equal(readLiveAgent(file), null, 'an unreadable record is no agent');
});
