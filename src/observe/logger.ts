/**
 * The process logger: pino JSON lines with secrets redacted.
 */
import { type LevelWithSilent, type Logger, pino } from 'pino';

/** Paths pino blanks out wherever they appear in a log object. */
export const REDACT_PATHS = [
  'apiKey',
  '*.apiKey',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'headers["x-api-key"]',
  '*.headers.authorization',
  '*.headers["x-api-key"]',
];

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** Minimum level written. */
  level: LevelWithSilent;
  /** Where lines go; stdout (fd 1) when absent. */
  destination?: NodeJS.WritableStream;
}

/**
 * Creates a logger. Lines are written asynchronously (sonic-boom, `sync: false`) so logging never
 * blocks the event loop; call `flushLogger` before the process exits.
 */
export function createLogger(options: LoggerOptions): Logger {
  const destination = options.destination ?? pino.destination({ dest: 1, sync: false });
  return pino(
    {
      level: options.level,
      base: { name: 'switchyard' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    },
    destination,
  );
}

/** Flushes buffered log lines (best effort) before exit. */
export function flushLogger(logger: Logger): void {
  try {
    logger.flush();
  } catch {
    // sonic-boom throws when nothing was opened yet; nothing to flush then.
  }
}
