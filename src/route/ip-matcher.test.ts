import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isCidr } from '../config/schema.ts';
import { IpMatcher, parseCidr } from './ip-matcher.ts';

test('an IPv4-mapped block with a prefix of 96 or more is the IPv4 block it maps', () => {
  assert.deepEqual(parseCidr('::ffff:10.0.0.0/104'), { address: '10.0.0.0', prefix: 8, family: 'ipv4' });
  assert.deepEqual(parseCidr('::FFFF:10.1.2.3'), { address: '10.1.2.3', prefix: null, family: 'ipv4' });
  const mapped = new IpMatcher(['::ffff:10.0.0.0/104']);
  assert.ok(mapped.matches('10.1.2.3'));
  assert.ok(mapped.matches('::ffff:10.1.2.3'));
  assert.ok(!mapped.matches('11.0.0.1'));
  assert.ok(!mapped.matches('::ffff:11.0.0.1'));
  assert.ok(new IpMatcher(['::ffff:0.0.0.0/96']).matches('203.0.113.9'));
  assert.ok(new IpMatcher(['::ffff:192.0.2.1/128']).matches('192.0.2.1'));
});

test('an IPv4-mapped block with a shorter prefix is an IPv6 block; IPv4 clients match in mapped form', () => {
  assert.deepEqual(parseCidr('::ffff:10.0.0.0/80'), { address: '::ffff:10.0.0.0', prefix: 80, family: 'ipv6' });
  const wide = new IpMatcher(['::ffff:10.0.0.0/80']);
  assert.ok(wide.matches('10.1.2.3'));
  assert.ok(wide.matches('198.51.100.1'));
  assert.ok(wide.matches('::1'));
  assert.ok(!wide.matches('2001:db8::1'));
});

test('entries out of range are refused by the schema and by the matcher alike', () => {
  for (const bad of ['::ffff:10.0.0.0/129', '10.0.0.0/33', '::ffff:10.0.0.0/', '10.0.0.0/-1', '::ffff:300.0.0.0/104']) {
    assert.equal(parseCidr(bad), null, bad);
    assert.equal(isCidr(bad), false, bad);
    assert.throws(() => new IpMatcher([bad]), { code: 'SY_CFG_INVALID' }, bad);
  }
});

const prefix = fc.oneof(
  fc.constant(''),
  fc.integer({ min: 0, max: 140 }).map((n) => `/${n}`),
  fc.constantFrom('/', '/x', '/08', '/1000'),
);
const address = fc.oneof(
  fc.ipV4(),
  fc.ipV6(),
  fc.ipV4().map((a) => `::ffff:${a}`),
  fc.ipV4().map((a) => `::FFFF:${a}`),
);

test('every entry the schema accepts compiles, and only those', () => {
  fc.assert(
    fc.property(address, prefix, (a, p) => {
      const entry = a + p;
      let compiles = true;
      try {
        new IpMatcher([entry]);
      } catch {
        compiles = false;
      }
      assert.equal(compiles, isCidr(entry), entry);
    }),
    { numRuns: 2000 },
  );
});

test('a mapped block matches the clients of the IPv4 block it maps, plain or mapped', () => {
  fc.assert(
    fc.property(fc.ipV4(), fc.integer({ min: 0, max: 32 }), fc.ipV4(), (net, bits, client) => {
      const mapped = new IpMatcher([`::ffff:${net}/${bits + 96}`]);
      const plain = new IpMatcher([`${net}/${bits}`]);
      assert.equal(mapped.matches(client), plain.matches(client));
      assert.equal(mapped.matches(`::ffff:${client}`), plain.matches(client));
    }),
    { numRuns: 2000 },
  );
});
