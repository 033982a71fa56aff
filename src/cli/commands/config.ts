import { Argument } from '@commander-js/extra-typings';
import { checkConfigFile, loadConfig, readExampleConfig } from '../../config/load.js';
import { jsonSchemaText } from '../../config/json-schema.js';
import { CONFIG_KINDS, type ConfigKind } from '../../config/schema.js';
import { ConfigError, ExitCode } from '../../errors.js';
import { DEFAULT_CONFIG, runAction, type Root } from '../app.js';

const CHECK_EXAMPLES = `
Examples:
  $ baton config check --config /etc/baton/source.yaml   kind inferred from the file
  $ baton config check sink                              checks ${DEFAULT_CONFIG.sink}
  $ baton config check source --config ./source.yaml --json

Exit codes: 0 valid, 2 not valid (each problem is printed as FILE:LINE:COL: key.path: what is wrong).
--json prints {"ok", "kind", "file", "errors": [{"line", "col", "path", "message"}]}
(line, col and path are null when the file cannot be read).`;

const SCHEMA_EXAMPLES = `
Examples:
  $ baton config schema source > /etc/baton/source.schema.json
  $ baton config schema sink | jq '.properties | keys'`;

const EXAMPLE_EXAMPLES = `
Examples:
  $ baton config example source > /etc/baton/source.yaml   then edit it
  $ baton config example sink | less`;

const GROUP_EXAMPLES = `
Examples:
  $ baton config check --config /etc/baton/sink.yaml
  $ baton config example source > source.yaml && baton config check --config source.yaml
  $ baton config schema sink > sink.schema.json`;

const kindArgument = (description: string) => new Argument('<kind>', description).choices(CONFIG_KINDS);

/** `baton config check|schema|example`: validate a config file, print its JSON Schema or a commented example. */
export function registerConfigCommands(root: Root): void {
  const config = root
    .command('config')
    .description('check a config file; print the JSON Schema or a commented example config')
    .addHelpText('after', GROUP_EXAMPLES);

  config
    .command('check')
    .description('validate a config file and report every problem with FILE:LINE:COL')
    .addArgument(
      new Argument('[kind]', 'source or sink (inferred from the file when omitted)').choices(CONFIG_KINDS),
    )
    .option(
      '--config <file>',
      `the config file (default ${DEFAULT_CONFIG.source} or ${DEFAULT_CONFIG.sink} by kind)`,
    )
    .option('--json', 'print the result as JSON on stdout')
    .addHelpText('after', CHECK_EXAMPLES)
    .action((kind, opts) => runAction(root, () => checkCommand(kind, opts)));

  config
    .command('schema')
    .description('print the JSON Schema (draft-07) of a config file, for editors')
    .addArgument(kindArgument('source or sink'))
    .addHelpText('after', SCHEMA_EXAMPLES)
    .action((kind) =>
      runAction(root, () => {
        process.stdout.write(jsonSchemaText(kind));
        return Promise.resolve(ExitCode.ok);
      }),
    );

  config
    .command('example')
    .description('print a commented example config that passes `baton config check`')
    .addArgument(kindArgument('source or sink'))
    .addHelpText('after', EXAMPLE_EXAMPLES)
    .action((kind) =>
      runAction(root, async () => {
        process.stdout.write(await readExampleConfig(kind));
        return ExitCode.ok;
      }),
    );
}

async function checkCommand(
  kind: ConfigKind | undefined,
  opts: { config?: string; json?: true },
): Promise<number> {
  const file = opts.config ?? (kind === undefined ? undefined : DEFAULT_CONFIG[kind]);
  if (file === undefined) {
    throw new ConfigError('config check: name the kind (source or sink) or the file (--config FILE)');
  }
  if (opts.json === true) {
    const report = await checkConfigFile(file, kind);
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return report.ok ? ExitCode.ok : ExitCode.usage;
  }
  const loaded = await loadConfig(file, kind);
  process.stdout.write(`ok: ${file} is a valid ${loaded.kind} config\n`);
  if (loaded.kind === 'sink' && loaded.config.offsite && !loaded.config.offsite.encryption)
    process.stderr.write(
      `baton: warning: ${file}: offsite.encryption is not set: objects in the bucket are stored plain (readable by anyone who can read the bucket)\n`,
    );
  return ExitCode.ok;
}
