import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateConfig } from '../config/load.ts';
import type { Config, ConfigInput } from '../config/schema.ts';
import { IpMatcher, normalizeAddress } from './ip-matcher.ts';
import { expandPorts } from './ports.ts';
import { type MatchContext, RouteTable } from './route-table.ts';

type RouteInput = ConfigInput['routes'][number];

function table(routes: RouteInput[]): RouteTable {
  return new RouteTable(validateConfig({ routes }));
}

function fwd(name: string, match: RouteInput['match'], extra: Partial<RouteInput> = {}): RouteInput {
  return { name, match, action: { type: 'forward', targets: ['127.0.0.1:1'] }, ...extra };
}

function ctx(port: number, serverName: string | null, extra: Partial<MatchContext> = {}): MatchContext {
  return { port, serverName, clientIp: '127.0.0.1', tls: true, path: null, headers: null, layer: 4, ...extra };
}

test('ports: single, ranges and lists expand, deduplicated and sorted', () => {
  assert.deepEqual(expandPorts(80), [80]);
  assert.deepEqual(expandPorts('8000-8003'), [8000, 8001, 8002, 8003]);
  assert.deepEqual(expandPorts([443, '80-81', 80]), [80, 81, 443]);
});

test('exact names beat nothing, wildcards match subdomains at any depth but not the apex', () => {
  const t = table([
    fwd('exact', { ports: 443, domains: ['api.example.com'] }),
    fwd('wild', { ports: 443, domains: ['*.example.com'] }),
  ]);
  assert.equal(t.match(ctx(443, 'api.example.com'))?.name, 'exact');
  assert.equal(t.match(ctx(443, 'www.example.com'))?.name, 'wild');
  assert.equal(t.match(ctx(443, 'a.b.example.com'))?.name, 'wild');
  assert.equal(t.match(ctx(443, 'example.com')), null);
  assert.equal(t.match(ctx(443, 'example.org')), null);
  assert.equal(t.match(ctx(443, null)), null);
  assert.equal(t.match(ctx(444, 'api.example.com')), null);
});

test('priority decides between buckets; equal priority keeps file order', () => {
  const t = table([
    fwd('catch-all', { ports: 443 }, { priority: 5 }),
    fwd('exact', { ports: 443, domains: ['api.example.com'] }),
    fwd('second', { ports: 443 }, { priority: 5 }),
  ]);
  assert.equal(t.match(ctx(443, 'api.example.com'))?.name, 'catch-all');
  const u = table([
    fwd('wild', { ports: 443, domains: ['*.example.com'] }),
    fwd('exact', { ports: 443, domains: ['api.example.com'] }),
  ]);
  assert.equal(u.match(ctx(443, 'api.example.com'))?.name, 'wild', 'file order wins at equal priority');
});

test('host names match case-insensitively; "*" means any name', () => {
  const t = table([
    fwd('upper', { ports: 443, domains: ['API.Example.COM'] }),
    fwd('any', { ports: 443, domains: ['*'] }),
  ]);
  assert.equal(t.match(ctx(443, 'api.example.com'))?.name, 'upper');
  assert.equal(t.match(ctx(443, 'other.test'))?.name, 'any');
  assert.equal(t.match(ctx(443, null))?.name, 'any');
});

test('client IP rules: IPv4, IPv6 and IPv4-mapped addresses', () => {
  const t = table([
    fwd('v4', { ports: 80, clientIps: ['10.0.0.0/8'] }),
    fwd('v6', { ports: 80, clientIps: ['2001:db8::/32'] }),
    fwd('rest', { ports: 80 }),
  ]);
  assert.equal(t.match(ctx(80, null, { clientIp: '10.1.2.3' }))?.name, 'v4');
  assert.equal(t.match(ctx(80, null, { clientIp: '::ffff:10.1.2.3' }))?.name, 'v4');
  assert.equal(t.match(ctx(80, null, { clientIp: '2001:db8::5' }))?.name, 'v6');
  assert.equal(t.match(ctx(80, null, { clientIp: '11.0.0.1' }))?.name, 'rest');
  assert.equal(normalizeAddress('::FFFF:1.2.3.4'), '1.2.3.4');
  assert.equal(normalizeAddress('::ffff:abcd'), '::ffff:abcd');
  assert.ok(new IpMatcher(['192.0.2.1']).matches('::ffff:192.0.2.1'));
  assert.ok(!new IpMatcher(['192.0.2.1']).matches('192.0.2.2'));
});

test('TLS passthrough routes take only TLS connections', () => {
  const t = table([
    {
      name: 'tls',
      match: { ports: 443 },
      action: { type: 'forward', mode: 'tls-passthrough', targets: ['127.0.0.1:1'] },
    },
    fwd('plain', { ports: 443 }),
  ]);
  assert.equal(t.match(ctx(443, null, { tls: true }))?.name, 'tls');
  assert.equal(t.match(ctx(443, null, { tls: false }))?.name, 'plain');
  assert.equal(t.ports.get(443)?.needsPeek, true);
  assert.equal(table([fwd('plain', { ports: 80 })]).ports.get(80)?.needsPeek, false);
});

test('paths and headers match HTTP requests', () => {
  const config: Config = validateConfig({ routes: [fwd('base', { ports: 80 })] });
  const route = config.routes[0];
  const http = { ...(route.action as Extract<typeof route.action, { type: 'forward' }>), mode: 'http' as const };
  const t = new RouteTable({
    ...config,
    routes: [
      {
        ...route,
        name: 'api',
        match: { ports: 80, paths: ['/api/*', '/health'], headers: { 'X-Env': 'prod' } },
        action: http,
      },
      { ...route, name: 'rest', action: http },
    ],
  });
  const req = (path: string, headers: string[]): MatchContext => ctx(80, 'h', { tls: false, path, headers, layer: 7 });
  assert.equal(t.match(req('/api/v1', ['x-env', 'prod']))?.name, 'api');
  assert.equal(t.match(req('/health', ['X-Env', 'prod']))?.name, 'api');
  assert.equal(t.match(req('/api/v1', ['x-env', 'dev']))?.name, 'rest');
  assert.equal(t.match(req('/other', ['x-env', 'prod']))?.name, 'rest');
  assert.equal(t.match(ctx(80, null, { layer: 7 }))?.name, 'rest');
  assert.equal(t.match(ctx(80, null)), null, 'HTTP routes never match at layer 4');
});
