/* A per-chat scheduler that keeps outgoing messages within Telegram's
 * flood limits: at most `global_per_s` starts in any one-second window
 * overall, one message at a time per chat with `chat_interval_ms` between
 * two starts, and at most `group_per_min` starts in any minute for a group
 * (or channel).
 *
 * Every chat has its own FIFO queue, so one chat's backlog or penalty (a
 * 429) never delays another chat; chats that may send take turns in the
 * order they became ready. Items are started through their start callback,
 * from the loop or from within any throttle call (the callback must not
 * call back into the throttle). Work that is not a message does not go
 * through the throttle at all.
 *
 * Memory: one small record per chat with queued or recent messages; a
 * record is freed once its chat has nothing queued and its limits have
 * lapsed. All operations are O(1) apart from the hash lookup. */
#ifndef TGHOST_THROTTLE_H
#define TGHOST_THROTTLE_H

#include <stdbool.h>

#include <event2/event.h>

#include "base/qlist.h"

struct throttle;
struct throttle_chat;
struct throttle_item;

typedef void (*throttle_start_fn)(struct throttle_item *item);

struct throttle_item {
  throttle_start_fn start;     /* set by the owner */
  /* Private to the throttle. */
  struct qnode node;
  struct throttle_chat *chat;
  bool queued;
  bool running;
};

struct throttle_limits {
  int global_per_s;            /* default 30 */
  long chat_interval_ms;       /* default 1000 */
  int group_per_min;           /* default 20 */
  long group_window_ms;        /* the "minute" (60000; shorter in tests) */
};

void throttle_limits_default(struct throttle_limits *l);

struct throttle *throttle_new(struct event_base *base,
                              const struct throttle_limits *limits);
/* Items still queued or running are forgotten (their owners must not use
 * the throttle afterwards). */
void throttle_free(struct throttle *t);
/* New limits apply from now on; the history of the global window is kept
 * where it fits. */
void throttle_set_limits(struct throttle *t,
                         const struct throttle_limits *limits);

/* Queues item for chat `key` (a chat id as text, or "@username"); front
 * puts it before the chat's other items (a retry keeps its place). */
void throttle_submit(struct throttle *t, struct throttle_item *item,
                     const char *key, bool is_group, bool front);
/* A started item finished: its chat may send its next message. */
void throttle_done(struct throttle *t, struct throttle_item *item);
/* A started item must be sent again (Telegram answered 429): it goes back
 * to the front of its chat's queue, and the chat starts nothing for the
 * next penalty_ms milliseconds. */
void throttle_requeue(struct throttle *t, struct throttle_item *item,
                      long penalty_ms);
/* Withdraws a queued or running item. */
void throttle_cancel(struct throttle *t, struct throttle_item *item);
/* The chat may not start anything for the next ms milliseconds (Telegram
 * answered 429 with retry_after). */
void throttle_penalize(struct throttle *t, const char *key, long ms);

/* Items queued and not started, over all chats. */
size_t throttle_queued(const struct throttle *t);

#endif
