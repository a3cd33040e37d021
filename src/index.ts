/**
 * Switchyard's library API: start a proxy from a typed config, update it, stop it.
 *
 * ```ts
 * import { Switchyard } from 'switchyard';
 * const proxy = await Switchyard.start({ bind: '127.0.0.1', routes: [...] });
 * await proxy.update(newConfig);
 * await proxy.close();
 * ```
 */
export { loadConfigFile, validateConfig } from './config/load.ts';
export type { Config, ConfigInput, RouteConfig } from './config/schema.ts';
export { ERRORS, type ErrorCode, SwitchyardError } from './errors.ts';
export { type StartOptions, Switchyard } from './runtime/switchyard.ts';
