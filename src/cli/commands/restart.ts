// SPDX-License-Identifier: MIT
// jfe restart: the seamless reload of the agent running in this namespace.
// Sends it SIGUSR2 and waits until its new generation of workers holds the
// slots (exit 0) or the reload failed and the old workers kept serving (exit 1).
import type { CommandModule } from 'yargs';
import { closeNetns, openNetns } from '../../bpf/netns';
import { loadSettings } from '../../config/load';
import { agentRecordPath, readLiveAgent } from '../../daemon/agent-record';
import { JfeError } from '../../errors';
import { EXIT, setExitCode } from '../main';
import { withOptions } from '../options';

const NAMES = ['runDir', 'json'] as const;
const WAIT_MS = 90_000;

export const restartCommand: CommandModule = {
  command: 'restart',
  describe: 'reload the running agent in place with no lost connection: new workers (the jfe now installed) take over, the old ones drain',
  builder: (y) => withOptions(y, NAMES),
  handler: async (argv) => {
    const s = loadSettings(argv, NAMES);
    const ns = openNetns(undefined);
    const file = agentRecordPath(s.runDir, ns.ino);
    closeNetns(ns);
    const before = readLiveAgent(file);
    if (!before) throw new JfeError('JFE_ERR_NOT_RUNNING', `no jfe run is running in this network namespace (no live agent recorded in ${file})`);
    process.kill(before.pid, 'SIGUSR2');
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      await new Promise((r) => setTimeout(r, 100));
      const now = readLiveAgent(file);
      if (!now || now.pid !== before.pid) throw new JfeError('JFE_ERR_NOT_RUNNING', `the agent (pid ${before.pid}) stopped or was replaced during the reload`);
      if (now.reloads > before.reloads) {
        const ok = now.generation > before.generation;
        process.stdout.write(
          s.json ? `${JSON.stringify({ reloaded: ok, pid: now.pid, generation: now.generation, error: now.lastReloadError ?? null })}\n`
            : ok ? `reloaded: pid ${now.pid}, worker generation ${now.generation} (the workers jfe run started are generation 1; each reload starts the next); the previous workers drain\n`
              : `reload failed (${now.lastReloadError ?? 'unknown'}); the previous workers keep serving\n`,
        );
        setExitCode(ok ? EXIT.ok : EXIT.error);
        return;
      }
      if (Date.now() > deadline) throw new JfeError('JFE_ERR_TAKEOVER', `the agent (pid ${before.pid}) did not finish reloading within ${WAIT_MS / 1000} s`);
    }
  },
};
