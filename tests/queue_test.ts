import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { List, type Node } from "../src/_queue.ts";

class Item implements Node<Item> {
  prev: Item | undefined = undefined;
  next: Item | undefined = undefined;
  list: List<Item> | undefined = undefined;
  readonly n: number;
  constructor(n: number) {
    this.n = n;
  }
}

function listOf(...ns: number[]): { list: List<Item>; items: Item[] } {
  const list = new List<Item>();
  const items = ns.map((n) => new Item(n));
  for (const item of items) list.push(item);
  return { list, items };
}

function contents(list: List<Item>): number[] {
  return [...list].map((item) => item.n);
}

/** Walks the list backwards from the tail, checking the links agree with the forward order. */
function assertLinks(list: List<Item>): void {
  const forward = contents(list);
  const backward: number[] = [];
  for (let node = list.tail; node; node = node.prev) backward.unshift(node.n);
  assert.deepEqual(backward, forward);
  assert.equal(list.size, forward.length);
  assert.equal(list.head?.prev, undefined);
  assert.equal(list.tail?.next, undefined);
  for (const item of list) assert.equal(item.list, list);
}

describe("List", () => {
  it("List.push() appends at the tail and keeps insertion order", () => {
    const { list } = listOf(1, 2, 3);
    assert.deepEqual(contents(list), [1, 2, 3]);
    assert.equal(list.head?.n, 1);
    assert.equal(list.tail?.n, 3);
    assertLinks(list);
  });

  it("List.shift() removes the head, oldest first, and returns undefined when empty", () => {
    const { list, items } = listOf(1, 2, 3);
    assert.equal(list.shift(), items[0]);
    assert.equal(list.shift(), items[1]);
    assert.deepEqual(contents(list), [3]);
    assertLinks(list);
    assert.equal(list.shift(), items[2]);
    assert.equal(list.shift(), undefined);
    assert.equal(list.size, 0);
    assert.equal(list.head, undefined);
    assert.equal(list.tail, undefined);
  });

  it("List.pop() removes the tail, newest first, and returns undefined when empty", () => {
    const { list, items } = listOf(1, 2, 3);
    assert.equal(list.pop(), items[2]);
    assert.equal(list.pop(), items[1]);
    assertLinks(list);
    assert.equal(list.pop(), items[0]);
    assert.equal(list.pop(), undefined);
    assert.equal(list.size, 0);
  });

  it("List.remove() unlinks a node from the middle, the head and the tail", () => {
    const { list, items } = listOf(1, 2, 3, 4, 5);
    assert.equal(list.remove(items[2]), true);
    assert.deepEqual(contents(list), [1, 2, 4, 5]);
    assertLinks(list);
    assert.equal(list.remove(items[0]), true);
    assert.equal(list.remove(items[4]), true);
    assert.deepEqual(contents(list), [2, 4]);
    assertLinks(list);
    for (const removed of [items[0], items[2], items[4]]) {
      assert.equal(removed.list, undefined);
      assert.equal(removed.prev, undefined);
      assert.equal(removed.next, undefined);
    }
  });

  it("List.remove() leaves a list alone when given a node of another list or none", () => {
    const { list: a, items: itemsA } = listOf(1, 2, 3);
    const { list: b, items: itemsB } = listOf(10, 20);
    assert.equal(a.remove(itemsB[0]), false);
    assert.equal(a.remove(new Item(99)), false);
    assert.deepEqual(contents(a), [1, 2, 3]);
    assert.deepEqual(contents(b), [10, 20]);
    assertLinks(a);
    assertLinks(b);
    // A node already removed is foreign too: removing it twice counts once.
    assert.equal(a.remove(itemsA[1]), true);
    assert.equal(a.remove(itemsA[1]), false);
    assert.equal(a.size, 2);
  });

  it("List nodes can move from one list to another after removal", () => {
    const { list: a, items } = listOf(1, 2);
    const b = new List<Item>();
    a.remove(items[0]);
    b.push(items[0]);
    assert.deepEqual(contents(a), [2]);
    assert.deepEqual(contents(b), [1]);
    assertLinks(a);
    assertLinks(b);
  });

  it("List iteration survives removing the current node", () => {
    const { list } = listOf(1, 2, 3, 4, 5, 6);
    const seen: number[] = [];
    for (const item of list) {
      seen.push(item.n);
      if (item.n % 2 === 0) list.remove(item);
    }
    assert.deepEqual(seen, [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(contents(list), [1, 3, 5]);
    assertLinks(list);
  });

  it("List stays consistent under a random mix of operations (checked against an array)", () => {
    let seed = 42;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const list = new List<Item>();
    const model: Item[] = [];
    let next = 0;
    for (let step = 0; step < 2_000; step++) {
      const op = random();
      if (op < 0.4) {
        const item = new Item(next++);
        list.push(item);
        model.push(item);
      } else if (op < 0.55) {
        assert.equal(list.shift(), model.shift());
      } else if (op < 0.7) {
        assert.equal(list.pop(), model.pop());
      } else if (model.length > 0) {
        const index = Math.floor(random() * model.length);
        assert.equal(list.remove(model[index]), true);
        model.splice(index, 1);
      }
      assert.equal(list.size, model.length);
    }
    assert.deepEqual([...list], model);
    assertLinks(list);
  });
});
