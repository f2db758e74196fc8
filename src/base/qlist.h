/* Intrusive doubly linked lists: a node lives inside the object it links,
 * so adding and removing never allocates and is O(1). */
#ifndef TGHOST_QLIST_H
#define TGHOST_QLIST_H

#include <stdbool.h>
#include <stddef.h>

struct qnode {
  struct qnode *prev, *next;
};

/* A list is a sentinel node; an empty list points at itself. */
struct qlist {
  struct qnode head;
  size_t count;
};

#define qlist_entry(node, type, member) \
  ((type *)((char *)(node) - offsetof(type, member)))

static inline void qlist_init(struct qlist *l) {
  l->head.prev = l->head.next = &l->head;
  l->count = 0;
}

static inline bool qlist_empty(const struct qlist *l) {
  return l->head.next == &l->head;
}

static inline bool qnode_linked(const struct qnode *n) {
  return n->next != NULL;
}

static inline void qlist_push_back(struct qlist *l, struct qnode *n) {
  n->prev = l->head.prev;
  n->next = &l->head;
  l->head.prev->next = n;
  l->head.prev = n;
  l->count++;
}

static inline void qlist_push_front(struct qlist *l, struct qnode *n) {
  n->next = l->head.next;
  n->prev = &l->head;
  l->head.next->prev = n;
  l->head.next = n;
  l->count++;
}

static inline void qlist_remove(struct qlist *l, struct qnode *n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->prev = n->next = NULL;
  l->count--;
}

static inline struct qnode *qlist_front(const struct qlist *l) {
  return qlist_empty(l) ? NULL : l->head.next;
}

static inline struct qnode *qlist_pop_front(struct qlist *l) {
  struct qnode *n = qlist_front(l);
  if (n) qlist_remove(l, n);
  return n;
}

static inline size_t qlist_size(const struct qlist *l) { return l->count; }

/* Whether n is the first node of l. */
static inline bool qlist_is_front(const struct qlist *l,
                                  const struct qnode *n) {
  return l->head.next == n;
}

/* Visits every node, front to back. The body must not unlink the node it
 * visits (collect first, or pop from the front, to remove while walking). */
#define qlist_foreach(node, list)                                   \
  for (struct qnode *node = (list)->head.next; node != &(list)->head; \
       node = node->next)

#endif
