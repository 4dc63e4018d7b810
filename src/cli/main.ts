#!/usr/bin/env node
/** The `regroup` command line. Each command lives in its own file and is listed here. */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { EXIT, reportError } from './common.js';
import { statusCommand } from './status.js';
import { submitCommand } from './submit.js';
import { serverCommand } from './server.js';
import { workerCommand } from './worker.js';
import { demoCommand } from './demo.js';
import { groupsCommand, tasksCommand } from './groups.js';
import { cancelCommand, retryCommand } from './control.js';

/** Every command of the CLI, one file each. */
const commands: (() => Command)[] = [
  serverCommand,
  workerCommand,
  submitCommand,
  statusCommand,
  groupsCommand,
  tasksCommand,
  cancelCommand,
  retryCommand,
  demoCommand,
];

/** The package's version, from its package.json (dist/src/cli/main.js is three levels below it). */
export function packageVersion(): string {
  const file = new URL('../../../package.json', import.meta.url);
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

export function buildProgram(): Command {
  const program = new Command('regroup')
    .description('fault-tolerant distributed task runner')
    .version(packageVersion(), '-V, --version', 'print the version of regroup')
    .showHelpAfterError('(run with --help for usage)');
  for (const make of commands) program.addCommand(make());
  // Usage errors exit 2 like every other error of ours (commander's default is 1).
  for (const cmd of [program, ...program.commands]) cmd.exitOverride();
  return program;
}

async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (e) {
    // Commander already printed its own usage errors; anything else is one line with its code.
    if (e instanceof CommanderError) process.exitCode = e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    else process.exitCode = reportError(e);
  }
}

await main(process.argv);
