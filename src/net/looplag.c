#include "net/looplag.h"

#include <stdbool.h>
#include <stdlib.h>

#include "base/clock.h"
#include "base/log.h"

/* How long past its budget the CPU guard may let a loop run before its hook
 * stops it: the guard's tick (50 ms) counted twice, since a stretch that
 * starts just after a tick is seen only at the next but one, and as much
 * again for a busy machine that delays the signal. A stall the guard ended
 * is not reported. */
#define GUARD_REACTION_MS 200

struct looplag {
  struct event_base *base;
  struct event *timer;
  long interval_ms;
  long threshold_ms;
  long budget_ms;
  uint64_t due_ms;         /* when the timer should fire next */
  looplag_stops_fn stops;
  void *stops_ud;
  unsigned long last_stops;
};

/* The next tick is due interval_ms from now (not from when this one was
 * due): one stall is reported once. */
static void arm(struct looplag *l) {
  struct timeval tv = {l->interval_ms / 1000, (l->interval_ms % 1000) * 1000};
  l->due_ms = clock_now_ms() + (uint64_t)l->interval_ms;
  event_base_update_cache_time(l->base);   /* measured from now, as due_ms */
  evtimer_add(l->timer, &tv);
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
  struct looplag *l = arg;
  uint64_t now = clock_now_ms();
  long late = now > l->due_ms ? (long)(now - l->due_ms) : 0;
  unsigned long stops = l->stops ? l->stops(l->stops_ud) : 0;
  bool guard_stopped = stops != l->last_stops;
  l->last_stops = stops;
  if (late > l->threshold_ms && !guard_stopped)
    log_warn("the event loop was blocked for %.1f s, longer than the CPU "
             "budget (%ld ms) allows: something the CPU guard cannot stop "
             "ran on it, such as a blocking os.execute, io.popen or C module "
             "in a handler; every update waited meanwhile",
             late / 1000.0, l->budget_ms);
  arm(l);
}

struct looplag *looplag_new(struct event_base *base, long budget_ms,
                            looplag_stops_fn stops, void *ud) {
  struct looplag *l = calloc(1, sizeof *l);
  if (!l) return NULL;
  l->base = base;
  l->stops = stops;
  l->stops_ud = ud;
  l->last_stops = stops ? stops(ud) : 0;
  l->budget_ms = budget_ms;
  l->interval_ms = budget_ms / 2;
  if (l->interval_ms < 100) l->interval_ms = 100;
  if (l->interval_ms > 1000) l->interval_ms = 1000;
  l->threshold_ms = budget_ms + GUARD_REACTION_MS;
  l->timer = evtimer_new(base, on_tick, l);
  if (!l->timer) {
    free(l);
    return NULL;
  }
  arm(l);
  return l;
}

void looplag_free(struct looplag *l) {
  if (!l) return;
  event_free(l->timer);
  free(l);
}
