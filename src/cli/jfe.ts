// SPDX-License-Identifier: MIT
// bin jfe: the agent and its certificate authority.
import yargs from 'yargs';
import { caCommand } from './commands/ca';
import { certsCommand } from './commands/certs';
import { doctorCommand } from './commands/doctor';
import { restartCommand } from './commands/restart';
import { runCommand } from './commands/run';
import { main } from './main';
import { SETTINGS_EPILOGUE } from './options';

export function jfeParser() {
  return yargs()
    .scriptName('jfe')
    .usage('$0 <command> [options]\n\nJump to Full Encryption: every TCP service on this host answers TLS, with no change to the services.')
    .command(runCommand)
    .command(restartCommand)
    .command(doctorCommand)
    .command(caCommand)
    .command(certsCommand)
    .demandCommand(1, 'give a command: run, restart, doctor, ca or certs')
    .epilogue(`Run "jfe <command> --help" for the options of a command. ${SETTINGS_EPILOGUE}`);
}

/** Entry point of the bin shim. */
export function cli(argv: string[]): void {
  void main(jfeParser(), argv).then((code) => {
    process.exitCode = code;
  });
}

if (require.main === module) cli(process.argv.slice(2));
