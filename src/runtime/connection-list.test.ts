import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConnectionList } from './connection-list.ts';

class Item {
  readonly name: string;
  constructor(name: string) {
    this.name = name;
  }
}

function names(list: ConnectionList<Item>): string[] {
  const seen: string[] = [];
  list.forEach((item) => {
    seen.push(item.name);
  });
  return seen.sort();
}

test('add, delete from the middle, the end and twice; slots stay consistent', () => {
  const list = new ConnectionList<Item>();
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((n) => new Item(n));
  for (const item of [a, b, c, d]) list.add(item);
  list.add(b);
  assert.equal(list.size, 4);
  list.delete(b);
  assert.equal(list.has(b), false);
  assert.deepEqual(names(list), ['a', 'c', 'd']);
  list.delete(b);
  list.delete(d);
  assert.deepEqual(names(list), ['a', 'c']);
  list.delete(new Item('stranger'));
  // An entry of another list is not this list's to remove.
  const other = new ConnectionList<Item>();
  other.add(new Item('x'));
  const inOther = new Item('y');
  other.add(inOther);
  list.delete(inOther);
  assert.equal(other.has(inOther), true);
  assert.equal(list.size, 2);
  list.add(b);
  assert.deepEqual(names(list), ['a', 'b', 'c']);
  for (const item of [a, b, c]) list.delete(item);
  assert.equal(list.size, 0);
});

test('forEach visits each entry once while entries remove themselves and others', () => {
  const list = new ConnectionList<Item>();
  const items = Array.from({ length: 10 }, (_, i) => new Item(String(i)));
  for (const item of items) list.add(item);
  const visited: string[] = [];
  list.forEach((item) => {
    visited.push(item.name);
    list.delete(item);
    // Removing an entry not yet visited: it is skipped.
    if (item.name === '0') list.delete(items[9]);
    list.add(new Item(`new-${item.name}`));
  });
  assert.equal(new Set(visited).size, visited.length, `visited twice: ${visited.join(',')}`);
  // Entries added during the walk are not visited either.
  assert.deepEqual(visited.sort(), ['0', '1', '2', '3', '4', '5', '6', '7', '8']);
  assert.equal(list.size, 9);
});

test('an entry can be in two lists that use different slot keys', () => {
  const other = Symbol('other');
  const a = new ConnectionList<Item>();
  const b = new ConnectionList<Item>(other);
  const items = ['x', 'y', 'z'].map((n) => new Item(n));
  for (const item of items) {
    a.add(item);
    b.add(item);
  }
  a.delete(items[0]);
  b.delete(items[2]);
  assert.deepEqual(names(a), ['y', 'z']);
  assert.deepEqual(names(b), ['x', 'y']);
  assert.ok(b.has(items[0]) && !a.has(items[0]));
  assert.ok(a.has(items[2]) && !b.has(items[2]));
});
