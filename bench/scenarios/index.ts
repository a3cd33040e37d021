/** Every scenario, in the order a full run executes them. Add new scenarios here. */
import type { Scenario } from '../lib/context.ts';
import { tcpBulk } from './tcp-bulk.ts';
import { tcpSmall } from './tcp-small.ts';

/** All scenarios of `npm run bench`. */
export const SCENARIOS: readonly Scenario[] = [tcpSmall, tcpBulk];
