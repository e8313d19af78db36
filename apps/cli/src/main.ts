#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { ManageClient } from './api-client.js';
import { applyConfig, diffConfig } from './apply.js';
import { ConfigFileError, readConfigFile } from './config-file.js';
import { showFeature } from './feature-wait.js';

const usage = `vigil — configuration as code for Vigil

  vigil diff  -f <file.yaml>   show what apply would change
  vigil apply -f <file.yaml>   create or update event types, save and publish policies
  vigil feature <name> [--wait]  show a feature's state; --wait follows its backfill with a progress bar

Options: --url (or VIGIL_URL, default http://localhost:8080), --key (or VIGIL_API_KEY: a key with the manage scope).
Exit codes: 0 done (diff: no changes), 1 errors, 2 usage; diff exits 3 when there are changes;
feature --wait exits 1 when the backfill failed.`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      file: { type: 'string', short: 'f' },
      url: { type: 'string' },
      key: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      wait: { type: 'boolean' },
    },
  });
  const command = positionals[0];
  const isFeature = command === 'feature' && positionals[1] !== undefined;
  if (
    values.help === true ||
    (!isFeature && ((command !== 'apply' && command !== 'diff') || values.file === undefined))
  ) {
    process.stderr.write(`${usage}\n`);
    return values.help === true ? 0 : 2;
  }
  const key = values.key ?? process.env.VIGIL_API_KEY;
  if (key === undefined || key === '') {
    process.stderr.write('vigil: set VIGIL_API_KEY or --key to a key with the manage scope\n');
    return 2;
  }
  const client = new ManageClient(values.url ?? process.env.VIGIL_URL ?? 'http://localhost:8080', key);
  if (isFeature) {
    const status = await showFeature(client, positionals[1] as string, {
      wait: values.wait === true,
      out: process.stdout,
    });
    return status === 'failed' ? 1 : 0;
  }
  const file = readConfigFile(values.file as string);
  if (command === 'diff') {
    const changes = await diffConfig(client, file);
    for (const change of changes) {
      process.stdout.write(`${change.kind} ${change.name}: ${change.status}\n`);
      if (change.patch !== '') process.stdout.write(`${change.patch}\n`);
    }
    return changes.some((change) => change.status !== 'unchanged') ? 3 : 0;
  }
  const result = await applyConfig(client, file);
  for (const action of result.actions) process.stdout.write(`${action}\n`);
  if (result.actions.length === 0 && result.errors.length === 0) process.stdout.write('nothing to change\n');
  for (const error of result.errors) process.stderr.write(`${error}\n`);
  return result.errors.length > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    const message =
      error instanceof ConfigFileError || error instanceof Error ? error.message : String(error);
    process.stderr.write(`vigil: ${message}\n`);
    process.exit(1);
  },
);
