#include "net/throttle.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/hashmap.h"
#include "base/keyhash.h"

#define GLOBAL_WINDOW_MS 1000
#define MAX_GROUP_RING 64

enum chat_state {
  CHAT_IDLE,       /* nothing queued; kept while its limits are in force */
  CHAT_SLEEPING,   /* items queued; its timer fires when it may send */
  CHAT_READY,      /* items queued; in t->ready, waiting for a global slot */
  CHAT_BUSY,       /* one item running */
};

struct throttle_chat {
  struct throttle *t;
  struct hashmap_node node;      /* in t->chats, keyed by key[] */
  enum chat_state state;
  bool is_group;
  struct qlist queue;
  struct qnode ready_node;
  struct event *timer;
  uint64_t next_ms;              /* earliest next start */
  uint64_t group_ring[MAX_GROUP_RING];  /* recent starts, oldest first */
  int group_count;
  char key[];
};

struct throttle {
  struct event_base *base;
  struct throttle_limits limits;
  struct hashmap chats;          /* chats are the script's: seeded */
  struct qlist ready;
  struct event *global_timer;
  uint64_t *global_ring;         /* start times, a circular buffer */
  int global_cap, global_head, global_count;
  size_t queued;
  bool pumping;
};

void throttle_limits_default(struct throttle_limits *l) {
  l->global_per_s = 30;
  l->chat_interval_ms = 1000;
  l->group_per_min = 20;
  l->group_window_ms = 60000;
}

static void pump(struct throttle *t);
static void on_global_timer(evutil_socket_t fd, short what, void *arg);
static void on_chat_timer(evutil_socket_t fd, short what, void *arg);

static void arm(struct event *ev, uint64_t ms) {
  struct timeval tv = {(long)(ms / 1000), (long)(ms % 1000) * 1000};
  evtimer_add(ev, &tv);
}

/* --- the global window --------------------------------------------------- */

static void global_ring_alloc(struct throttle *t, int cap) {
  uint64_t *ring = xcalloc((size_t)cap, sizeof *ring);
  int keep = t->global_count < cap ? t->global_count : cap;
  /* Keep the most recent starts, oldest first. */
  for (int i = 0; i < keep; i++) {
    int from = (t->global_head + t->global_count - keep + i) % t->global_cap;
    ring[i] = t->global_ring[from];
  }
  free(t->global_ring);
  t->global_ring = ring;
  t->global_cap = cap;
  t->global_head = 0;
  t->global_count = keep;
}

/* Milliseconds until another start fits in the global window. */
static uint64_t global_wait(const struct throttle *t, uint64_t now) {
  if (t->global_count < t->global_cap) return 0;
  uint64_t oldest = t->global_ring[t->global_head];
  return oldest + GLOBAL_WINDOW_MS > now ? oldest + GLOBAL_WINDOW_MS - now : 0;
}

static void global_record(struct throttle *t, uint64_t now) {
  if (t->global_count < t->global_cap) {
    t->global_ring[(t->global_head + t->global_count++) % t->global_cap] = now;
  } else {
    t->global_ring[t->global_head] = now;
    t->global_head = (t->global_head + 1) % t->global_cap;
  }
}

/* --- chats --------------------------------------------------------------- */

static struct throttle_chat *chat_find(struct throttle *t, const char *key,
                                       bool create) {
  size_t len = strlen(key);
  struct hashmap_key k = hashmap_key(&t->chats, 0, key, len);
  struct hashmap_node *n = hashmap_find(&t->chats, &k);
  if (n) return hashmap_entry(n, struct throttle_chat, node);
  if (!create) return NULL;
  struct throttle_chat *c = xcalloc(1, sizeof *c + len + 1);
  memcpy(c->key, key, len + 1);
  c->t = t;
  c->state = CHAT_IDLE;
  qlist_init(&c->queue);
  c->timer = evtimer_new(t->base, on_chat_timer, c);
  hashmap_insert(&t->chats, &c->node, &k, c->key);
  return c;
}

static void chat_free(struct throttle_chat *c) {
  struct throttle *t = c->t;
  hashmap_remove(&t->chats, &c->node);
  if (qnode_linked(&c->ready_node)) qlist_remove(&t->ready, &c->ready_node);
  event_free(c->timer);
  free(c);
}

static uint64_t group_window(const struct throttle_chat *c) {
  return (uint64_t)c->t->limits.group_window_ms;
}

/* Drops group starts that left the window. */
static void group_expire(struct throttle_chat *c, uint64_t now) {
  int drop = 0;
  while (drop < c->group_count &&
         c->group_ring[drop] + group_window(c) <= now)
    drop++;
  if (drop) {
    memmove(c->group_ring, c->group_ring + drop,
            (size_t)(c->group_count - drop) * sizeof c->group_ring[0]);
    c->group_count -= drop;
  }
}

static int group_limit(const struct throttle *t) {
  int n = t->limits.group_per_min;
  return n < 1 ? 1 : n > MAX_GROUP_RING ? MAX_GROUP_RING : n;
}

/* Milliseconds until the chat's own limits allow a start. */
static uint64_t chat_wait(struct throttle_chat *c, uint64_t now) {
  uint64_t wait = c->next_ms > now ? c->next_ms - now : 0;
  if (c->is_group) {
    group_expire(c, now);
    int limit = group_limit(c->t);
    if (c->group_count >= limit) {
      uint64_t free_at =
          c->group_ring[c->group_count - limit] + group_window(c);
      if (free_at > now && free_at - now > wait) wait = free_at - now;
    }
  }
  return wait;
}

/* Puts a chat that is not busy where it belongs now. */
static void chat_settle(struct throttle_chat *c) {
  struct throttle *t = c->t;
  uint64_t now = clock_now_ms();
  uint64_t wait = chat_wait(c, now);
  if (qnode_linked(&c->ready_node)) qlist_remove(&t->ready, &c->ready_node);
  evtimer_del(c->timer);
  if (qlist_empty(&c->queue)) {
    if (wait == 0 && c->group_count == 0) {
      chat_free(c);
      return;
    }
    c->state = CHAT_IDLE;
    /* Come back when the limits have lapsed, to free the record. */
    uint64_t lapse = wait;
    if (c->is_group && c->group_count > 0) {
      uint64_t last = c->group_ring[c->group_count - 1] + group_window(c);
      if (last > now && last - now > lapse) lapse = last - now;
    }
    arm(c->timer, lapse ? lapse : 1);
    return;
  }
  if (wait > 0) {
    c->state = CHAT_SLEEPING;
    arm(c->timer, wait);
    return;
  }
  c->state = CHAT_READY;
  qlist_push_back(&t->ready, &c->ready_node);
  pump(t);
}

static void on_chat_timer(evutil_socket_t fd, short what, void *arg) {
  struct throttle_chat *c = arg;
  if (c->state == CHAT_BUSY) return;
  chat_settle(c);
}

static void start_item(struct throttle *t, struct throttle_chat *c,
                       uint64_t now) {
  struct throttle_item *item =
      qlist_entry(qlist_pop_front(&c->queue), struct throttle_item, node);
  t->queued--;
  item->queued = false;
  item->running = true;
  c->state = CHAT_BUSY;
  c->next_ms = now + (uint64_t)t->limits.chat_interval_ms;
  if (c->is_group) {
    group_expire(c, now);
    if (c->group_count == MAX_GROUP_RING) {
      memmove(c->group_ring, c->group_ring + 1,
              (MAX_GROUP_RING - 1) * sizeof c->group_ring[0]);
      c->group_count--;
    }
    c->group_ring[c->group_count++] = now;
  }
  global_record(t, now);
  item->start(item);
}

static void pump(struct throttle *t) {
  if (t->pumping) return;
  t->pumping = true;
  while (!qlist_empty(&t->ready)) {
    uint64_t now = clock_now_ms();
    uint64_t wait = global_wait(t, now);
    if (wait > 0) {
      arm(t->global_timer, wait);
      break;
    }
    struct throttle_chat *c = qlist_entry(qlist_pop_front(&t->ready),
                                          struct throttle_chat, ready_node);
    start_item(t, c, now);
  }
  t->pumping = false;
}

static void on_global_timer(evutil_socket_t fd, short what, void *arg) {
  pump(arg);
}

/* --- public -------------------------------------------------------------- */

struct throttle *throttle_new(struct event_base *base,
                              const struct throttle_limits *limits) {
  struct throttle *t = xcalloc(1, sizeof *t);
  t->base = base;
  hashmap_init(&t->chats, keyhash_random_seed());
  qlist_init(&t->ready);
  t->global_timer = evtimer_new(base, on_global_timer, t);
  throttle_set_limits(t, limits);
  return t;
}

void throttle_set_limits(struct throttle *t,
                         const struct throttle_limits *limits) {
  t->limits = *limits;
  if (t->limits.global_per_s < 1) t->limits.global_per_s = 1;
  if (t->limits.chat_interval_ms < 0) t->limits.chat_interval_ms = 0;
  if (t->limits.group_per_min < 1) t->limits.group_per_min = 1;
  if (t->limits.group_window_ms <= 0) t->limits.group_window_ms = 60000;
  if (t->global_cap != t->limits.global_per_s)
    global_ring_alloc(t, t->limits.global_per_s);
}

void throttle_free(struct throttle *t) {
  if (!t) return;
  size_t i;
  for (struct hashmap_node *n = hashmap_first(&t->chats, &i), *next; n;
       n = next) {
    next = hashmap_next(&t->chats, n, &i);
    struct throttle_chat *c = hashmap_entry(n, struct throttle_chat, node);
    event_free(c->timer);
    free(c);
  }
  hashmap_free(&t->chats);
  event_free(t->global_timer);
  free(t->global_ring);
  free(t);
}

void throttle_submit(struct throttle *t, struct throttle_item *item,
                     const char *key, bool is_group, bool front) {
  struct throttle_chat *c = chat_find(t, key, true);
  if (is_group) c->is_group = true;
  item->chat = c;
  item->queued = true;
  item->running = false;
  if (front) qlist_push_front(&c->queue, &item->node);
  else qlist_push_back(&c->queue, &item->node);
  t->queued++;
  if (c->state == CHAT_IDLE) chat_settle(c);
}

void throttle_done(struct throttle *t, struct throttle_item *item) {
  if (!item->running) return;
  struct throttle_chat *c = item->chat;
  item->running = false;
  item->chat = NULL;
  c->state = CHAT_IDLE;
  chat_settle(c);
}

void throttle_requeue(struct throttle *t, struct throttle_item *item,
                      long penalty_ms) {
  struct throttle_chat *c = item->chat;
  if (!item->running) return;
  item->running = false;
  uint64_t until = clock_now_ms() + (uint64_t)(penalty_ms > 0 ? penalty_ms : 0);
  if (until > c->next_ms) c->next_ms = until;
  item->queued = true;
  qlist_push_front(&c->queue, &item->node);
  t->queued++;
  c->state = CHAT_IDLE;
  chat_settle(c);
}

void throttle_cancel(struct throttle *t, struct throttle_item *item) {
  if (item->running) {
    throttle_done(t, item);
    return;
  }
  if (!item->queued) return;
  struct throttle_chat *c = item->chat;
  qlist_remove(&c->queue, &item->node);
  t->queued--;
  item->queued = false;
  item->chat = NULL;
  if (qlist_empty(&c->queue) && c->state != CHAT_BUSY) chat_settle(c);
}

void throttle_penalize(struct throttle *t, const char *key, long ms) {
  struct throttle_chat *c = chat_find(t, key, true);
  uint64_t until = clock_now_ms() + (uint64_t)(ms > 0 ? ms : 0);
  if (until > c->next_ms) c->next_ms = until;
  if (c->state != CHAT_BUSY) chat_settle(c);
}

size_t throttle_queued(const struct throttle *t) { return t->queued; }
