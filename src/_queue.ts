/**
 * Intrusive doubly linked lists: the pool's queues.
 *
 * A waiter or a resource record is its own list node, so pushing, shifting and removing an
 * element from the middle (an aborted waiter, an evicted idle resource) are all O(1) and
 * allocate nothing. The idle list doubles as a deque: LIFO pops from the tail, FIFO from the
 * head, and the head is always the least recently returned resource.
 *
 * @module
 */

/** A node that can sit in one {@linkcode List} at a time. */
export interface Node<N extends Node<N>> {
  prev: N | undefined;
  next: N | undefined;
  list: List<N> | undefined;
}

/** A doubly linked list of nodes that carry their own links. */
export class List<N extends Node<N>> {
  head: N | undefined = undefined;
  tail: N | undefined = undefined;
  size = 0;

  /** Appends `node` at the tail. */
  push(node: N): void {
    node.prev = this.tail;
    node.next = undefined;
    node.list = this;
    if (this.tail) this.tail.next = node;
    else this.head = node;
    this.tail = node;
    this.size++;
  }

  /** Removes and returns the head (the oldest entry). */
  shift(): N | undefined {
    const node = this.head;
    if (node) this.remove(node);
    return node;
  }

  /** Removes and returns the tail (the newest entry). */
  pop(): N | undefined {
    const node = this.tail;
    if (node) this.remove(node);
    return node;
  }

  /** Unlinks `node`; a node that is not in this list is left alone. */
  remove(node: N): boolean {
    if (node.list !== this) return false;
    if (node.prev) node.prev.next = node.next;
    else this.head = node.next;
    if (node.next) node.next.prev = node.prev;
    else this.tail = node.prev;
    node.prev = node.next = undefined;
    node.list = undefined;
    this.size--;
    return true;
  }

  /** Iterates head to tail; the current node may be removed while iterating. */
  *[Symbol.iterator](): IterableIterator<N> {
    let node = this.head;
    while (node) {
      const next = node.next;
      yield node;
      node = next;
    }
  }
}
