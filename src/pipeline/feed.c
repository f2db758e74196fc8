#include "pipeline/feed.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"

struct feed_waiter {
  struct task *task;
  uint64_t seq;                  /* of its update */
  struct qnode node;
};

/* The process's one feed: what was pushed, who waits, and the source that
 * reads it (NULL while no runner does). */
static struct {
  struct event_base *base;
  struct event *deliver_ev;
  struct qlist queue;            /* update_items, oldest first */
  struct qlist waiters;          /* feed_waiters, in push order */
  uint64_t pushed;               /* seq of the last update queued */
  uint64_t delivered;            /* seq of the last update delivered */
  struct feed_source *source;
  bool ready;
} feed;

struct feed_source {
  struct update_source base;
  int wanted;                    /* the last fetch's limit not yet served */
  bool started, stopping;
};

/* Items are delivered in push order, so the n-th delivered one is the
 * one pushed n-th: seq numbers need no room in the item. */

static int push_taken(lua_State *co, void *data) {
  (void)data;
  if (!co) return 0;
  lua_pushboolean(co, 1);
  lua_pushboolean(co, 1);
  return 2;
}

static int push_not_taken(lua_State *co, void *data) {
  char *why = data;
  if (co) {
    lua_pushboolean(co, 1);
    lua_pushboolean(co, 0);
    lua_pushstring(co, why);
  }
  free(why);
  return co ? 3 : 0;
}

/* Wakes the waiters whose updates are up to seq, or all of them with why
 * (when their updates were dropped). */
static void wake_waiters(uint64_t upto, const char *why) {
  struct qnode *n;
  while ((n = qlist_front(&feed.waiters)) != NULL) {
    struct feed_waiter *w = qlist_entry(n, struct feed_waiter, node);
    if (!why && w->seq > upto) break;
    qlist_remove(&feed.waiters, n);
    if (why) task_wake(w->task, push_not_taken, xstrdup(why));
    else task_wake(w->task, push_taken, NULL);
    free(w);
  }
}

static void deliver(struct feed_source *s) {
  if (!s->started || s->stopping || s->wanted <= 0 || qlist_empty(&feed.queue))
    return;
  struct qlist batch;
  qlist_init(&batch);
  int n = 0;
  struct qnode *node;
  while (n < s->wanted && (node = qlist_pop_front(&feed.queue)) != NULL) {
    qlist_push_back(&batch, node);
    n++;
  }
  s->wanted = 0;
  feed.delivered += (uint64_t)n;
  source_deliver(&s->base, &batch, "feed");
}

static void on_deliver(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  (void)arg;
  if (feed.source) deliver(feed.source);
}

static void init_once(struct event_base *base) {
  if (feed.ready) return;
  feed.base = base;
  feed.deliver_ev = event_new(base, -1, 0, on_deliver, NULL);
  qlist_init(&feed.queue);
  qlist_init(&feed.waiters);
  feed.ready = true;
}

void feed_push(struct event_base *base, int64_t id, char *json, size_t len,
               struct task *waiter) {
  init_once(base);
  struct update_item *u = xcalloc(1, sizeof *u);
  u->id = id;
  u->json = json;
  u->len = len;
  qlist_push_back(&feed.queue, &u->node);
  feed.pushed++;
  if (waiter) {
    struct feed_waiter *w = xcalloc(1, sizeof *w);
    w->task = waiter;
    w->seq = feed.pushed;
    qlist_push_back(&feed.waiters, &w->node);
  }
  if (feed.source && feed.source->wanted > 0) event_active(feed.deliver_ev, 0, 0);
}

void feed_forget(struct task *waiter) {
  if (!feed.ready) return;
  qlist_foreach(n, &feed.waiters) {
    struct feed_waiter *w = qlist_entry(n, struct feed_waiter, node);
    if (w->task == waiter) {
      qlist_remove(&feed.waiters, n);
      free(w);
      return;
    }
  }
}

size_t feed_queued(void) { return feed.ready ? qlist_size(&feed.queue) : 0; }

/* Drops what is queued and tells its pushers. */
static void drop_queued(const char *why) {
  update_batch_free(&feed.queue);
  /* Every waiter whose update was delivered was woken at accept; the rest
   * waited for updates that are gone now. */
  wake_waiters(0, why);
  feed.delivered = feed.pushed;
}

void feed_shutdown(void) {
  if (!feed.ready) return;
  update_batch_free(&feed.queue);
  struct qnode *n;
  while ((n = qlist_pop_front(&feed.waiters)) != NULL)
    free(qlist_entry(n, struct feed_waiter, node));
  event_free(feed.deliver_ev);
  memset(&feed, 0, sizeof feed);
}

/* --- the source's operations ------------------------------------------ */

static void feed_start(struct update_source *base) {
  struct feed_source *s = (struct feed_source *)base;
  s->started = true;
  source_ready(base);
}

static void feed_fetch(struct update_source *base, int limit) {
  struct feed_source *s = (struct feed_source *)base;
  if (s->stopping) return;
  s->wanted = limit;
  deliver(s);
}

static void feed_accept(struct update_source *base) {
  (void)base;
  wake_waiters(feed.delivered, NULL);
}

static void feed_outcome(struct update_source *base, int64_t id,
                         enum update_outcome o, const char *reason) {
  (void)base;
  (void)id;
  (void)o;
  (void)reason;
}

static void feed_reconfigure(struct update_source *base,
                             const struct run_options *o) {
  (void)base;
  (void)o;
}

static void feed_stop(struct update_source *base) {
  struct feed_source *s = (struct feed_source *)base;
  s->stopping = true;
  s->wanted = 0;
  if (!qlist_empty(&feed.queue))
    log_info("feed: %zu queued update(s) not taken: the bot is stopping",
             qlist_size(&feed.queue));
  drop_queued("the bot is stopping");
}

static void feed_drained(struct update_source *base) { source_stopped(base); }

static void feed_abort(struct update_source *base) {
  struct feed_source *s = (struct feed_source *)base;
  s->stopping = true;
  drop_queued("the bot stopped at once");
}

static void feed_free(struct update_source *base) {
  struct feed_source *s = (struct feed_source *)base;
  if (feed.source == s) feed.source = NULL;
  free(s);
}

static const struct update_source_type feed_type = {
    .name = "feed",
    .releases_unstarted = false,
    .start = feed_start,
    .fetch = feed_fetch,
    .accept = feed_accept,
    .outcome = feed_outcome,
    .known = NULL,
    .reconfigure = feed_reconfigure,
    .stop = feed_stop,
    .drained = feed_drained,
    .abort = feed_abort,
    .health = NULL,
    .free = feed_free,
};

static struct update_source *feed_new(const struct update_source_params *p,
                                      const struct update_source_events *ev,
                                      void *ud, struct buf *err) {
  (void)err;
  init_once(p->base);
  struct feed_source *s = xcalloc(1, sizeof *s);
  update_source_init(&s->base, &feed_type, ev, ud);
  feed.source = s;
  return &s->base;
}

static bool feed_wanted(const struct update_source_params *p) {
  return p->opts->feed;
}

const struct update_source_entry feed_source_entry = {"feed", feed_wanted,
                                                      feed_new};
