#include "cluster/clusterkey.h"

#include <inttypes.h>

#include "base/json.h"

/* The member name's integer member "id", read from the object at r. */
static bool read_id(const char *obj, size_t len, const char *name,
                    int64_t *out) {
  struct json_reader at;
  if (!json_find_member(obj, len, name, &at)) return false;
  struct json_slice span;
  if (json_peek(&at) != JSON_OBJECT || !json_skip(&at, &span)) return false;
  struct json_reader id;
  struct json_number n;
  if (!json_find_member(span.ptr, span.len, "id", &id) ||
      json_peek(&id) != JSON_NUMBER || !json_read_number(&id, &n) ||
      !n.is_integer)
    return false;
  *out = n.i;
  return true;
}

/* The object at member name of the object obj, as a span. */
static bool member_object(const char *obj, size_t len, const char *name,
                          struct json_slice *span) {
  struct json_reader at;
  return json_find_member(obj, len, name, &at) &&
         json_peek(&at) == JSON_OBJECT && json_skip(&at, span);
}

enum clusterkey_kind clusterkey_default(const char *json, size_t len,
                                        struct buf *key) {
  struct json_reader r;
  json_reader_init(&r, json, len);
  if (!json_object_begin(&r)) return CLUSTERKEY_INVALID;
  bool have_id = false;
  int64_t update_id = 0;
  struct json_slice payload = {0}, name;
  /* The update's payload: the one object member beside update_id. */
  while (json_object_next(&r, &name)) {
    if (json_slice_is(&name, "update_id")) {
      struct json_number n;
      if (json_peek(&r) != JSON_NUMBER || !json_read_number(&r, &n) ||
          !n.is_integer)
        return CLUSTERKEY_INVALID;
      update_id = n.i;
      have_id = true;
    } else if (!payload.ptr && json_peek(&r) == JSON_OBJECT) {
      if (!json_skip(&r, &payload)) return CLUSTERKEY_INVALID;
    } else if (!json_skip(&r, NULL)) {
      return CLUSTERKEY_INVALID;
    }
  }
  if (json_error(&r) || !have_id) return CLUSTERKEY_INVALID;
  int64_t id;
  if (payload.ptr) {
    struct json_slice message;
    /* ctx.chat: the payload's chat, or its message's (a callback query). */
    if (read_id(payload.ptr, payload.len, "chat", &id) ||
        (member_object(payload.ptr, payload.len, "message", &message) &&
         read_id(message.ptr, message.len, "chat", &id))) {
      buf_printf(key, "%" PRId64, id);
      return CLUSTERKEY_CHAT;
    }
    /* ctx.from: the payload's sender, or its user (poll answers,
     * business connections). */
    if (read_id(payload.ptr, payload.len, "from", &id) ||
        read_id(payload.ptr, payload.len, "user", &id)) {
      buf_printf(key, "%" PRId64, id);
      return CLUSTERKEY_USER;
    }
  }
  clusterkey_of_update_id(update_id, key);
  return CLUSTERKEY_UPDATE;
}

void clusterkey_of_update_id(int64_t update_id, struct buf *key) {
  buf_printf(key, "u:%" PRId64, update_id);
}

int clusterkey_partition(const char *key, size_t len, int partitions) {
  /* Frozen: see the header. */
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)key[i];
    h *= 0x100000001b3ULL;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return (int)(h % (uint64_t)partitions);
}
