// SPDX-License-Identifier: MIT
// SIGHUP's split of a new configuration into what is applied live and what
// needs a restart, and the log level that follows it into existing children.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planReload } from '../../../src/daemon/reload';
import { createLogger, setLogLevel } from '../../../src/log';

const running = Object.freeze({ ports: '23-65535', excludePorts: '', logLevel: 'info', idleTimeout: 1000, stateDir: '/var/lib/jfe', workers: 2, mark: 1 });

test('live settings take the new value; the others keep theirs and are listed as needing a restart', () => {
  const plan = planReload(running, { ...running, excludePorts: '8080', idleTimeout: 5000, stateDir: '/elsewhere', workers: 4 });
  assert.deepEqual(plan.live.sort(), ['excludePorts', 'idleTimeout']);
  assert.deepEqual(plan.needRestart.sort(), ['stateDir', 'workers']);
  assert.deepEqual(plan.next, { ...running, excludePorts: '8080', idleTimeout: 5000 });
  assert.ok(Object.isFrozen(plan.next));
});

test('an unchanged configuration changes nothing; an unknown (newer) setting is restart-only', () => {
  assert.deepEqual(planReload(running, { ...running }), { next: running, live: [], needRestart: [] });
  const plan = planReload({ ...running, metricsListen: 'a' } as typeof running, { ...running, metricsListen: 'b' } as typeof running);
  assert.deepEqual(plan.needRestart, ['metricsListen']);
});

test('setLogLevel reaches children made before it', () => {
  const root = createLogger('info', 2);
  const child = root.child({ a: 1 }).child({ b: 2 });
  assert.equal(child.isLevelEnabled('debug'), false);
  setLogLevel(root, 'debug');
  assert.equal(child.isLevelEnabled('debug'), true);
  setLogLevel(root, 'error');
  assert.equal(child.isLevelEnabled('warn'), false);
});
