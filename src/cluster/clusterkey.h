/* The cluster key of an update and the partition it goes to.
 *
 * An update's cluster key decides its partition and so which instance runs
 * it, and updates sharing a key run one after another, in order, across
 * the whole cluster (cluster.h). By default the key is the update's chat
 * (ctx.chat.id: the message's chat, the chat of a callback query's
 * message, of a member update, a reaction, a boost ...), else its user
 * (ctx.from.id, or the user of a poll answer or business connection), else
 * the update itself: the update id, which constrains nothing. A script's
 * cluster.key function replaces the default (cluster.h says how).
 *
 * Keys are text: an integer key is its decimal digits ("-1001234567890"),
 * so a chat id and the same number given as a string are one key, and a
 * private chat's id, which is its user's id, is one key with that user.
 * The update-id key is "u:<id>", apart from every chat and user.
 *
 * The partition is a fixed hash of the key's bytes (64-bit FNV-1a, then
 * splitmix64's finalizer) modulo the partition count. It is part of the
 * cluster's data format: every instance, of every version, must send a key
 * to the same partition, so it never changes (a change would move keys
 * between partitions while both are being read, and break their order).
 *
 * Layer: cluster (pure C: the JSON reader only). */
#ifndef TGHOST_CLUSTERKEY_H
#define TGHOST_CLUSTERKEY_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

/* Where a default key came from. */
enum clusterkey_kind {
  CLUSTERKEY_CHAT,
  CLUSTERKEY_USER,
  CLUSTERKEY_UPDATE,
  CLUSTERKEY_INVALID,   /* not an update object with an update_id */
};

/* Appends the default key of the update (its raw JSON) to key. */
enum clusterkey_kind clusterkey_default(const char *json, size_t len,
                                        struct buf *key);
/* Appends the key of an update id ("u:<id>"). */
void clusterkey_of_update_id(int64_t update_id, struct buf *key);
/* The partition of a key, in [0, partitions). */
int clusterkey_partition(const char *key, size_t len, int partitions);

#endif
