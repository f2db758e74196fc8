/* The conversation table: which conversation owns each conversation key.
 * Pure C (no Lua, no loop), so it can be tested on its own; the Lua
 * binding (luaconv.c) keeps its records in it.
 *
 * A conversation key names "this user in this chat" (by default): the
 * value a bot's key function returns for an update, a string or a 64-bit
 * integer; a string key and an integer key never match. Every update is
 * looked up once while any conversation exists, so lookups are O(1) and
 * allocation-free; each key is stored once, in the caller's node.
 *
 * Nodes are intrusive: the caller embeds a convmap_node in its own record
 * and gets the record back with qlist_entry (qlist.h). A key is in the
 * table at most once: convmap_insert() of a key already there is a bug
 * the caller avoids with convmap_find().
 *
 * The table is a hashmap (base/hashmap.h: seeded, since keys come from
 * users; it gives its memory back as keys go, so a burst of 10,000
 * dialogs does not pin its table once they are over). */
#ifndef TGHOST_CONVERSATION_H
#define TGHOST_CONVERSATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/hashmap.h"

enum convmap_key_type { CONVMAP_STRING = 1, CONVMAP_INTEGER = 2 };

struct convmap_key {
  enum convmap_key_type type;
  const char *str;              /* CONVMAP_STRING: len bytes, not copied */
  size_t len;
  int64_t num;                  /* CONVMAP_INTEGER */
};

/* Keys up to this many bytes live inside the node ("-1001234567890:42"). */
#define CONVMAP_INLINE_KEY 32

/* Caller-owned; filled in by convmap_insert. */
struct convmap_node {
  struct hashmap_node node;
  char inline_key[CONVMAP_INLINE_KEY];
};

struct convmap {
  struct hashmap map;
};

void convmap_init(struct convmap *m, uint64_t seed);
/* Frees the bucket array; nodes still present are the caller's (their
 * long keys are freed here). */
void convmap_free(struct convmap *m);

/* The node with key k, or NULL. */
struct convmap_node *convmap_find(const struct convmap *m,
                                  const struct convmap_key *k);
/* Adds n under k (copied). k must not be present. */
void convmap_insert(struct convmap *m, struct convmap_node *n,
                    const struct convmap_key *k);
/* Takes n out of the table and frees its key copy. */
void convmap_remove(struct convmap *m, struct convmap_node *n);
/* n's key (pointing into n for a string key). */
struct convmap_key convmap_node_key(const struct convmap_node *n);

size_t convmap_count(const struct convmap *m);
/* Bytes the table holds from malloc (the bucket array and long keys). */
size_t convmap_memory(const struct convmap *m);

#endif
