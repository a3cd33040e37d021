/**
 * A logger that keeps its JSON lines in memory, so tests can assert what was logged.
 */
import { Writable } from 'node:stream';
import type { Logger } from 'pino';
import { createLogger } from '../../src/observe/logger.ts';

/** Parsed log lines plus the logger writing them. */
export interface CapturedLogs {
  logger: Logger;
  lines: Array<Record<string, unknown>>;
  /** Lines whose `code` field equals `code`. */
  withCode(code: string): Array<Record<string, unknown>>;
}

/** Creates a debug-level logger whose lines are parsed into `lines`. */
export function captureLogs(level: 'info' | 'debug' = 'debug'): CapturedLogs {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line));
      callback();
    },
  });
  const logger = createLogger({ level, destination });
  return { logger, lines, withCode: (code) => lines.filter((l) => l.code === code) };
}
