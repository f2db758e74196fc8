/* The in-flight list: entries in start order with one timer on the oldest,
 * so adding, removing and expiring an entry are all O(1) (the idea of
 * grammY runner's DecayingDeque).
 *
 * Entries are intrusive. When the oldest entry passes the timeout it is
 * unlinked and handed to on_expired; removing an entry that already expired
 * is a no-op. inflight_expire() is the whole of the expiry logic and takes
 * the time as an argument, so tests can drive it without a clock. */
#ifndef TGHOST_INFLIGHT_H
#define TGHOST_INFLIGHT_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "base/qlist.h"

struct inflight_entry {
  struct qnode node;
  uint64_t started_ms;
};

struct inflight;
typedef void (*inflight_expired_fn)(struct inflight *q,
                                    struct inflight_entry *e, void *ud);

struct inflight {
  struct qlist list;
  long timeout_ms;              /* 0: entries never expire */
  struct event *timer;          /* NULL without a loop (tests) */
  inflight_expired_fn on_expired;
  void *ud;
};

/* base may be NULL: then nothing expires unless inflight_expire is
 * called. */
void inflight_init(struct inflight *q, struct event_base *base,
                   long timeout_ms, inflight_expired_fn on_expired, void *ud);
void inflight_free(struct inflight *q);
void inflight_set_timeout(struct inflight *q, long timeout_ms);

void inflight_add(struct inflight *q, struct inflight_entry *e,
                  uint64_t now_ms);
void inflight_remove(struct inflight *q, struct inflight_entry *e);
bool inflight_contains(const struct inflight_entry *e);
size_t inflight_size(const struct inflight *q);
struct inflight_entry *inflight_oldest(const struct inflight *q);

/* Expires every entry whose time is up at now_ms, oldest first. */
void inflight_expire(struct inflight *q, uint64_t now_ms);

#endif
