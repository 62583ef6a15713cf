// SPDX-License-Identifier: MIT
// bin jfe-bpf: manage the steering apart from the agent.
import yargs from 'yargs';
import { attachCommand } from './commands/attach';
import { detachCommand } from './commands/detach';
import { statusCommand } from './commands/status';
import { main } from './main';
import { SETTINGS_EPILOGUE } from './options';

export function jfeBpfParser() {
  return yargs()
    .scriptName('jfe-bpf')
    .usage('$0 <command> [options]\n\nManage the sk_lookup steering that sends inbound TCP connections to the jfe agent.')
    .command(attachCommand)
    .command(detachCommand)
    .command(statusCommand)
    .demandCommand(1, 'give a command: attach, detach or status')
    .epilogue(`Run "jfe-bpf <command> --help" for the options of a command. ${SETTINGS_EPILOGUE}`);
}

/** Entry point of the bin shim. */
export function cli(argv: string[]): void {
  void main(jfeBpfParser(), argv).then((code) => {
    process.exitCode = code;
  });
}

if (require.main === module) cli(process.argv.slice(2));
