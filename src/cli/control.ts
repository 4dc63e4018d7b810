/** `regroup cancel <group>` and `regroup retry <group> --failed`: an operator acting on a group. */
import { Command } from 'commander';
import { RegroupError } from '../core/errors.js';
import {
  EXIT,
  reportError,
  runCommand,
  withConnectionOptions,
  type ConnectionOptions,
} from './common.js';
import { cancelLine, retryLine } from './views.js';

export function cancelCommand(): Command {
  const cmd = new Command('cancel')
    .description(
      'cancel every task of a group that is not final yet (running runs are aborted), and every live group under it',
    )
    .argument('<groupId>', 'a group id');
  withConnectionOptions(cmd).addHelpText(
    'after',
    '\nWith --json: the group after (GroupView) with "descendants": how many groups under it were canceled.',
  );
  return cmd.action(async (groupId: string, flags: ConnectionOptions) => {
    process.exitCode = await runCommand(flags, async (client) => {
      const g = await client.group(groupId).cancel();
      return flags.json ? JSON.stringify(g) : cancelLine(g);
    });
  });
}

interface RetryFlags extends ConnectionOptions {
  failed?: boolean;
}

export function retryCommand(): Command {
  const cmd = new Command('retry')
    .description(
      "run a group's failed tasks again: each goes back to pending for a new attempt, " +
        'its attempt budget started over (canceled tasks stay canceled)',
    )
    .argument('<groupId>', 'a group id')
    .option('--failed', 'retry the failed tasks (required: it names what is retried)');
  withConnectionOptions(cmd).addHelpText(
    'after',
    '\nWith --json: {"retried":<n>,"group":GroupView}.',
  );
  return cmd.action(async (groupId: string, flags: RetryFlags) => {
    if (flags.failed !== true) {
      const e = new RegroupError(
        'bad_request',
        'say which tasks to retry: --failed (the only kind for now), e.g. regroup retry <group> --failed',
      );
      reportError(e, flags.json);
      process.exitCode = EXIT.usage;
      return;
    }
    process.exitCode = await runCommand(flags, async (client) => {
      const r = await client.group(groupId).retry();
      return flags.json ? JSON.stringify(r) : retryLine(groupId, r);
    });
  });
}
