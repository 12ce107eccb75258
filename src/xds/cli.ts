import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { AugurError } from '../common/errors.js';

/** Envoy's bootstrap message: the default root of a checked file (as envoy-config-check's). */
const BOOTSTRAP_TYPE = 'envoy.config.bootstrap.v3.Bootstrap';

interface CheckFlags {
  type: string;
  descriptorSet: string[];
}

/** `augur envoy-check`: the strict Envoy config check, for CI and for people editing envoy/. */
export function registerXdsCommand(program: Command): void {
  program
    .command('envoy-check')
    .description(
      "check Envoy YAML files strictly against Envoy's protos (unknown fields, enums, oneofs, @types)",
    )
    .argument('<files...>', 'Envoy YAML files')
    .option('--type <message>', 'root message of each file', BOOTSTRAP_TYPE)
    .option(
      '--descriptor-set <file>',
      'a FileDescriptorSet with the protos of @types Envoy does not define, imports included (buf build -o FILE, or protoc --include_imports --descriptor_set_out=FILE); repeatable',
      (v: string, all: string[]) => [...all, v],
      [],
    )
    .action(async (files: string[], flags: CheckFlags) => {
      // Loaded here: Envoy's descriptors are large and every `augur` command builds this CLI.
      const [{ checkEnvoyYaml }, { envoyRegistry }] = await Promise.all([
        import('./envoy-config-check.js'),
        import('./envoy-registry.js'),
      ]);
      const sets = flags.descriptorSet.map((file) => {
        try {
          return readFileSync(file);
        } catch (err) {
          throw new AugurError('FILE_UNREADABLE', `cannot read ${file}: ${(err as Error).message}`);
        }
      });
      const protos = envoyRegistry(sets);
      let bad = 0;
      for (const file of files) {
        let text: string;
        try {
          text = readFileSync(file, 'utf8');
        } catch (err) {
          throw new AugurError('FILE_UNREADABLE', `cannot read ${file}: ${(err as Error).message}`);
        }
        const problems = checkEnvoyYaml(text, flags.type, { protos });
        if (problems.length === 0) {
          process.stdout.write(`${file}: ok\n`);
          continue;
        }
        bad++;
        for (const p of problems)
          process.stdout.write(`${file}: ${p.path || '(root)'}: ${p.message}\n`);
      }
      if (bad > 0)
        throw new AugurError(
          'ENVOY_CONFIG_INVALID',
          `${bad} of ${files.length} Envoy files have problems`,
        );
    });
}
