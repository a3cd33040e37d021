#!/usr/bin/env node
/**
 * The `switchyard` command: `start`, `check` and `version`.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { loadConfigFile } from '../config/load.ts';
import { SwitchyardError } from '../errors.ts';
import { RouteTable } from '../route/route-table.ts';
import { Switchyard } from '../runtime/switchyard.ts';

const USAGE = `usage: switchyard <command> [options]

commands:
  start --config FILE   start the proxy (SIGHUP re-reads FILE; SIGTERM/SIGINT drain and stop)
  check --config FILE   validate FILE and print a summary, without starting
  version               print the version
`;

async function version(): Promise<string> {
  const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function fail(error: unknown): never {
  const message = error instanceof SwitchyardError ? `${error.code}: ${error.message}` : String(error);
  process.stderr.write(`switchyard: ${message}\n`);
  process.exit(error instanceof SwitchyardError && error.code.startsWith('SY_CFG_') ? 2 : 1);
}

async function start(file: string): Promise<void> {
  const proxy = await Switchyard.startFile(file);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      proxy.logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    proxy.logger.info({ signal }, 'shutting down');
    proxy.close().then(
      () => process.exit(0),
      (error) => fail(error),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    proxy.reload().catch((error: unknown) => {
      // A bad file on reload keeps the running table; the operator sees why in the log.
      proxy.logger.error(
        { code: (error as SwitchyardError).code, err: error },
        'reload failed; keeping the current routes',
      );
    });
  });
}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
  });
  const command = positionals[0];
  if (values.help || command === undefined) {
    process.stdout.write(USAGE);
    return;
  }
  switch (command) {
    case 'version':
      process.stdout.write(`switchyard ${await version()}\n`);
      return;
    case 'check': {
      if (values.config === undefined) throw new Error('check needs --config FILE');
      const config = await loadConfigFile(values.config);
      // Compile the table too, as start would: what passes check is what start builds.
      const table = new RouteTable(config);
      process.stdout.write(`${values.config}: ok (${config.routes.length} routes on ${table.ports.size} ports)\n`);
      return;
    }
    case 'start':
      if (values.config === undefined) throw new Error('start needs --config FILE');
      await start(values.config);
      return;
    default:
      throw new Error(`unknown command ${JSON.stringify(command)}\n${USAGE}`);
  }
}

main(process.argv.slice(2)).catch(fail);
