#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Command, CommanderError } from 'commander';
import { AugurError } from '../common/errors.js';
import { registerServeCommand } from '../serve/cli.js';
import { registerAgentCommand } from '../agent/cli.js';
import { registerForecastCommand } from '../lps/forecast/cli.js';
import { registerDataPlaneCommand } from '../rrm/cli.js';
import { registerDemoToolsCommand } from '../demo/cli.js';
import { registerDemoCommand } from '../demo/demo-command.js';
import { registerBenchCommand } from '../sim/cli.js';
import { registerXdsCommand } from '../xds/cli.js';

/**
 * The `augur` command. Each part registers its own subcommands from its folder's
 * cli.ts, so this file only lists them.
 */
export function buildProgram(): Command {
  const program = new Command('augur')
    .description('augur: predictive load balancing for Envoy and proxyless gRPC')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();
  registerServeCommand(program);
  registerAgentCommand(program);
  registerForecastCommand(program);
  registerDataPlaneCommand(program);
  registerDemoCommand(program);
  registerDemoToolsCommand(program);
  registerBenchCommand(program);
  registerXdsCommand(program);
  return program;
}

async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode);
    if (err instanceof AugurError) {
      process.stderr.write(`augur: ${err.message} (${err.code})\n`);
      process.exit(2);
    }
    throw err;
  }
}

// Run only as the program, so tests can import buildProgram().
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  await main(process.argv);
}
