/* Unit tests of the flood-control scheduler (src/throttle.c) on a real
 * event loop, with limits scaled down so they run in about a second. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net/throttle.h"

#include "check.h"
#include "testreg.h"

struct item {
  struct throttle_item ti;
  struct throttle *t;
  int id;
  long started_ms;         /* -1 until started */
  int order;
  struct event *done_ev;
};

static struct event_base *base;
static long t0_ms;
static int started;

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L - t0_ms;
}

static void on_done(evutil_socket_t fd, short what, void *arg) {
  struct item *it = arg;
  throttle_done(it->t, &it->ti);
}

static void on_start(struct throttle_item *ti) {
  struct item *it = (struct item *)ti;
  it->started_ms = now_ms();
  it->order = started++;
  /* Each "request" takes 5 ms; done must not be called from start. */
  struct timeval tv = {0, 5000};
  evtimer_add(it->done_ev, &tv);
}

static struct item *items_new(struct throttle *t, int n) {
  struct item *v = calloc((size_t)n, sizeof *v);
  for (int i = 0; i < n; i++) {
    v[i].ti.start = on_start;
    v[i].t = t;
    v[i].id = i;
    v[i].started_ms = -1;
    v[i].done_ev = evtimer_new(base, on_done, &v[i]);
  }
  return v;
}

static void items_free(struct item *v, int n) {
  for (int i = 0; i < n; i++) event_free(v[i].done_ev);
  free(v);
}

static void run_ms(long ms) {
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  event_base_loopexit(base, &tv);
  event_base_dispatch(base);
}

static struct throttle *fresh(int global, long interval, int group,
                              long window) {
  struct throttle_limits l;
  throttle_limits_default(&l);
  l.global_per_s = global;
  l.chat_interval_ms = interval;
  l.group_per_min = group;
  l.group_window_ms = window;
  t0_ms = 0;
  t0_ms = now_ms();
  started = 0;
  return throttle_new(base, &l);
}

/* One chat: FIFO, one at a time, the interval between starts. */
static void run_chat_interval(void) {
  struct throttle *t = fresh(30, 100, 20, 60000);
  struct item *v = items_new(t, 3);
  for (int i = 0; i < 3; i++) throttle_submit(t, &v[i].ti, "1", false, false);
  run_ms(400);
  for (int i = 0; i < 3; i++) {
    CHECK(v[i].order == i, "item %d started as #%d", i, v[i].order);
    CHECK(v[i].started_ms >= i * 100 - 2 && v[i].started_ms < i * 100 + 60,
          "item %d started at %ld ms", i, v[i].started_ms);
  }
  throttle_free(t);
  items_free(v, 3);
}

/* Many chats: at most global_per_s starts in any second. */
static void run_global(void) {
  struct throttle *t = fresh(5, 0, 20, 60000);
  struct item *v = items_new(t, 7);
  char key[16];
  for (int i = 0; i < 7; i++) {
    snprintf(key, sizeof key, "%d", 100 + i);
    throttle_submit(t, &v[i].ti, key, false, false);
  }
  run_ms(1300);
  for (int i = 0; i < 5; i++)
    CHECK(v[i].started_ms >= 0 && v[i].started_ms < 50,
          "item %d started at %ld ms", i, v[i].started_ms);
  for (int i = 5; i < 7; i++)
    CHECK(v[i].started_ms >= 998 && v[i].started_ms < 1150,
          "item %d started at %ld ms, not after the window", i,
          v[i].started_ms);
  throttle_free(t);
  items_free(v, 7);
}

/* A group: at most group_per_min starts per window. */
static void run_group(void) {
  struct throttle *t = fresh(30, 0, 2, 300);
  struct item *v = items_new(t, 5);
  for (int i = 0; i < 5; i++) throttle_submit(t, &v[i].ti, "-100", true, false);
  run_ms(900);
  long first = v[0].started_ms;
  CHECK(v[1].started_ms - first < 60, "second start at %ld", v[1].started_ms);
  CHECK(v[2].started_ms - first >= 298, "third start after %ld ms",
        v[2].started_ms - first);
  CHECK(v[4].started_ms - first >= 598, "fifth start after %ld ms",
        v[4].started_ms - first);
  throttle_free(t);
  items_free(v, 5);
}

/* A penalized chat waits; the others do not; a requeued item keeps its
 * place; a cancelled item never starts. */
static void run_penalty_and_cancel(void) {
  struct throttle *t = fresh(30, 50, 20, 60000);
  struct item *v = items_new(t, 4);
  throttle_penalize(t, "A", 300);
  throttle_submit(t, &v[0].ti, "A", false, false);
  throttle_submit(t, &v[1].ti, "B", false, false);
  throttle_submit(t, &v[2].ti, "B", false, false);
  throttle_submit(t, &v[3].ti, "B", false, false);
  throttle_cancel(t, &v[2].ti);
  CHECK(throttle_queued(t) == 2, "%zu queued", throttle_queued(t));
  run_ms(500);
  CHECK(v[1].started_ms >= 0 && v[1].started_ms < 40, "B started at %ld",
        v[1].started_ms);
  CHECK(v[3].started_ms >= 48 && v[3].started_ms < 150, "B's next at %ld",
        v[3].started_ms);
  CHECK(v[2].started_ms < 0, "a cancelled item started");
  CHECK(v[0].started_ms >= 298, "A started at %ld despite its penalty",
        v[0].started_ms);
  throttle_free(t);
  items_free(v, 4);
}

/* Each test on a loop of its own. */
static void with_base(void (*run)(void)) {
  base = event_base_new();
  run();
  event_base_free(base);
}

TEST(chat_interval) { with_base(run_chat_interval); }
TEST(global) { with_base(run_global); }
TEST(group) { with_base(run_group); }
TEST(penalty_and_cancel) { with_base(run_penalty_and_cancel); }
