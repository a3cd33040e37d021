/**
 * Client address matching against CIDR lists, built on node:net's BlockList.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';

/**
 * Strips the `::ffff:` prefix of an IPv4-mapped IPv6 address, so `::ffff:10.0.0.1` matches the
 * IPv4 rule `10.0.0.0/8` (dual-stack listeners report IPv4 peers in that form).
 */
export function normalizeAddress(address: string): string {
  if (address.length > 7 && address.charCodeAt(0) === 58 /* : */) {
    const lower = address.toLowerCase();
    if (lower.startsWith('::ffff:')) {
      const tail = address.slice(7);
      if (isIPv4(tail)) return tail;
    }
  }
  return address;
}

/** A compiled list of IPv4/IPv6 addresses and CIDR blocks. */
export class IpMatcher {
  readonly #list: BlockList;

  /** @param cidrs entries already validated by the config schema. */
  constructor(cidrs: ReadonlyArray<string>) {
    this.#list = new BlockList();
    for (const entry of cidrs) {
      const slash = entry.indexOf('/');
      const address = normalizeAddress(slash === -1 ? entry : entry.slice(0, slash));
      const type = isIPv6(address) ? 'ipv6' : 'ipv4';
      if (slash === -1) this.#list.addAddress(address, type);
      else this.#list.addSubnet(address, Number(entry.slice(slash + 1)), type);
    }
  }

  /** True when the (normalised) address falls in one of the entries. */
  matches(address: string): boolean {
    const normal = normalizeAddress(address);
    if (isIPv4(normal)) return this.#list.check(normal, 'ipv4');
    if (isIPv6(normal)) return this.#list.check(normal, 'ipv6');
    return false;
  }
}
