#include "pipeline/inflight.h"

#include "base/clock.h"

static void on_timer(evutil_socket_t fd, short what, void *arg) {
  inflight_expire(arg, clock_now_ms());
}

/* Points the timer at the oldest entry's deadline. */
static void rearm(struct inflight *q, uint64_t now_ms) {
  if (!q->timer) return;
  struct inflight_entry *oldest = inflight_oldest(q);
  if (!oldest || q->timeout_ms <= 0) {
    evtimer_del(q->timer);
    return;
  }
  uint64_t deadline = oldest->started_ms + (uint64_t)q->timeout_ms;
  uint64_t wait = deadline > now_ms ? deadline - now_ms : 0;
  struct timeval tv = {(long)(wait / 1000), (long)(wait % 1000) * 1000};
  evtimer_add(q->timer, &tv);
}

void inflight_init(struct inflight *q, struct event_base *base,
                   long timeout_ms, inflight_expired_fn on_expired, void *ud) {
  qlist_init(&q->list);
  q->timeout_ms = timeout_ms;
  q->timer = base ? evtimer_new(base, on_timer, q) : NULL;
  q->on_expired = on_expired;
  q->ud = ud;
}

void inflight_free(struct inflight *q) {
  if (q->timer) event_free(q->timer);
  q->timer = NULL;
}

void inflight_set_timeout(struct inflight *q, long timeout_ms) {
  q->timeout_ms = timeout_ms;
  rearm(q, clock_now_ms());
}

void inflight_add(struct inflight *q, struct inflight_entry *e,
                  uint64_t now_ms) {
  e->started_ms = now_ms;
  bool was_empty = qlist_empty(&q->list);
  qlist_push_back(&q->list, &e->node);
  if (was_empty) rearm(q, now_ms);
}

void inflight_remove(struct inflight *q, struct inflight_entry *e) {
  if (!qnode_linked(&e->node)) return;
  bool was_oldest = qlist_is_front(&q->list, &e->node);
  qlist_remove(&q->list, &e->node);
  if (was_oldest) rearm(q, clock_now_ms());
}

bool inflight_contains(const struct inflight_entry *e) {
  return qnode_linked(&e->node);
}

size_t inflight_size(const struct inflight *q) { return qlist_size(&q->list); }

struct inflight_entry *inflight_oldest(const struct inflight *q) {
  struct qnode *n = qlist_front(&q->list);
  return n ? qlist_entry(n, struct inflight_entry, node) : NULL;
}

void inflight_expire(struct inflight *q, uint64_t now_ms) {
  if (q->timeout_ms > 0) {
    struct inflight_entry *e;
    while ((e = inflight_oldest(q)) &&
           e->started_ms + (uint64_t)q->timeout_ms <= now_ms) {
      qlist_remove(&q->list, &e->node);
      q->on_expired(q, e, q->ud);
    }
  }
  rearm(q, now_ms);
}
