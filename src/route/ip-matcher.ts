/**
 * Client address matching against CIDR lists, built on node:net's BlockList.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { SwitchyardError } from '../errors.ts';

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

/** One address or block, in the form BlockList takes. */
export interface CidrBlock {
  readonly address: string;
  /** Prefix length; null for a single address. */
  readonly prefix: number | null;
  readonly family: 'ipv4' | 'ipv6';
}

/**
 * Parses an address or CIDR block (`10.0.0.0/8`, `2001:db8::/32`, `192.0.2.1`); null when it is
 * none. The config schema and {@link IpMatcher} both use it, so what validates also compiles.
 *
 * An IPv4-mapped entry in dotted form is the IPv4 block it maps when its prefix covers the fixed
 * 96-bit `::ffff:` part: `::ffff:10.0.0.0/104` is `10.0.0.0/8`. A shorter prefix cuts into that
 * part, so the entry is the IPv6 block it spells (`::ffff:10.0.0.0/80` is `::/80`) and IPv4
 * clients are compared in their mapped form `::ffff:a.b.c.d`, as HAProxy does when it matches an
 * IPv4 address against an IPv6 pattern (HAProxy configuration manual, 7.1.6 "Matching IPv4 and
 * IPv6 addresses").
 */
export function parseCidr(value: string): CidrBlock | null {
  const slash = value.indexOf('/');
  const address = slash === -1 ? value : value.slice(0, slash);
  let prefix: number | null = null;
  if (slash !== -1) {
    const bits = value.slice(slash + 1);
    if (!/^\d{1,3}$/.test(bits)) return null;
    prefix = Number(bits);
  }
  if (isIPv4(address)) return prefix === null || prefix <= 32 ? { address, prefix, family: 'ipv4' } : null;
  if (!isIPv6(address) || (prefix !== null && prefix > 128)) return null;
  const mapped = normalizeAddress(address);
  if (mapped !== address && (prefix === null || prefix >= 96)) {
    return { address: mapped, prefix: prefix === null ? null : prefix - 96, family: 'ipv4' };
  }
  return { address, prefix, family: 'ipv6' };
}

/** A compiled list of IPv4/IPv6 addresses and CIDR blocks. */
export class IpMatcher {
  readonly #list: BlockList;

  /**
   * @param cidrs entries already validated by the config schema.
   * @throws SwitchyardError SY_CFG_INVALID for an entry {@link parseCidr} refuses.
   */
  constructor(cidrs: ReadonlyArray<string>) {
    this.#list = new BlockList();
    for (const entry of cidrs) {
      const block = parseCidr(entry);
      if (block === null) {
        throw new SwitchyardError('SY_CFG_INVALID', {
          source: 'address list',
          detail: `${JSON.stringify(entry)} is not an IP address or CIDR block`,
        });
      }
      if (block.prefix === null) this.#list.addAddress(block.address, block.family);
      else this.#list.addSubnet(block.address, block.prefix, block.family);
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
