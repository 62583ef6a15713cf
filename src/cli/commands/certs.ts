// SPDX-License-Identifier: MIT
// jfe certs list: the certificates in the state directory, with their issuer
// and expiry. Reads files only; jfe need not be running.
import type { CommandModule } from 'yargs';
import { loadSettings } from '../../config/load';
import { listStoredCerts } from '../../daemon/certs-list';
import { EXIT, setExitCode } from '../main';
import { withOptions } from '../options';
import { renderCertList, renderCertListJson } from '../render-certs';

const NAMES = ['stateDir', 'json'] as const;

const listCommand: CommandModule = {
  command: 'list',
  describe: 'list stored certificates: name, issuer, expiry, days left (needs read access to the state directory: root)',
  builder: (y) => withOptions(y, NAMES),
  handler: async (argv) => {
    const s = loadSettings(argv, NAMES);
    const rows = await listStoredCerts(s.stateDir);
    process.stdout.write(`${s.json ? renderCertListJson(rows) : renderCertList(rows, s.stateDir)}\n`);
    setExitCode(EXIT.ok);
  },
};

export const certsCommand: CommandModule = {
  command: 'certs <command>',
  describe: 'certificates held by jfe',
  builder: (y) => y.command(listCommand).demandCommand(1, 'give a command: list'),
  handler: () => undefined,
};
