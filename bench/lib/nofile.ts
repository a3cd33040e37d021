/** Raising the open-files limit of a spawned program (the idle-connections scenario holds 20,000). */
import { exec } from './exec.ts';

/**
 * The command and arguments that run `command` with `ulimit -n nofile` (through bash, which
 * execs it, so the pid is the program's own), or unchanged when `nofile` is undefined.
 */
export function withNofile(
  command: string,
  args: readonly string[],
  nofile: number | undefined,
): { command: string; args: readonly string[] } {
  if (nofile === undefined) return { command, args };
  return { command: 'bash', args: ['-c', `ulimit -n ${nofile} && exec "$0" "$@"`, command, ...args] };
}

/**
 * The hard open-files limit this process (and so every child) can raise its soft limit to.
 * Raising the hard limit needs CAP_SYS_RESOURCE, which containers often drop even for root.
 */
export async function hardNofileLimit(): Promise<number> {
  const result = await exec('bash', ['-c', 'ulimit -Hn']);
  const text = result.stdout.trim();
  if (text === 'unlimited') return Number.MAX_SAFE_INTEGER;
  const value = Number(text);
  if (result.code !== 0 || !Number.isInteger(value)) throw new Error(`ulimit -Hn failed: ${result.stderr}`);
  return value;
}
