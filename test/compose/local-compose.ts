/**
 * Runs the compose file's augur commands in one process, through the CLI's own commander
 * definitions, in the order given (each action has started when the next is parsed):
 *   node --import tsx test/compose/local-compose.ts '[["serve", ...], ["agent", ...], ...]'
 * Used by compose-processes.test.ts; every process logs JSON lines to stdout.
 */
import { Command } from 'commander';
import { registerAgentCommand } from '../../src/agent/cli.js';
import { registerDemoToolsCommand } from '../../src/demo/cli.js';
import { registerDataPlaneCommand } from '../../src/rrm/cli.js';
import { registerServeCommand } from '../../src/serve/cli.js';

const commands = JSON.parse(process.argv[2] ?? '[]') as string[][];
for (const argv of commands) {
  const program = new Command('augur').exitOverride();
  registerServeCommand(program);
  registerAgentCommand(program);
  registerDemoToolsCommand(program);
  registerDataPlaneCommand(program);
  await program.parseAsync(argv, { from: 'user' });
}
process.stdout.write(
  `${JSON.stringify({ msg: 'local compose started', count: commands.length })}\n`,
);
