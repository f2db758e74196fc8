/* The update-source interface: where updates come from, behind one set of
 * operations (Redis's ConnectionType, curl's struct Curl_ssl). The runner
 * holds one struct update_source and never asks which kind it is.
 *
 * Sources today: getUpdates long polling (polling.h), the webhook
 * receiver (webhook.h), and the delivery journal (journal.h), which wraps
 * either: it is a source that owns an inner source. The host picks one
 * from its table of sources (host.c) by the run options, wraps it in the
 * journal when there is one, and hands it to the runner.
 *
 * The life of a source, as the runner drives it:
 *
 *   start      the bot's identity is known: go (setWebhook; the journal
 *              hands back what did not finish first)
 *   fetch(n)   the sink has room for n updates: deliver up to n, now or
 *              later, through events->on_batch. A source with a delivery
 *              pending, or that must wait (a long poll in flight, pacing,
 *              a batch not yet accepted), ignores the call and says
 *              events->on_ready when fetching makes sense again. Cheap:
 *              the runner calls it whenever it may have room.
 *   accept     every batch delivered so far is in the sink: from now on
 *              the runner answers for it. The source may let go of it
 *              (polling confirms it with its next getUpdates, the webhook
 *              sends its 200s). A wrapper that must make a batch durable
 *              first passes accept on to its inner source only then.
 *   outcome    each update delivered gets its outcome reported: STARTED
 *              when it runs (its job starts, possibly never), WAITING
 *              when it stops running to wait (behind other updates, or
 *              for its user) and STARTED again when it runs on, then
 *              exactly one end: DONE, FAILED, TIMED_OUT, CUT_SHORT, or
 *              RELEASED (never started, handed back at a graceful stop).
 *              A wait for a later update (a conversation's ctx:wait: the
 *              job parks idle) is also said as IDLE, next to its WAITING
 *              (or after it, for a job that waited behind others first). A source that keeps per-update records
 *              (the journal, a stream consumer's commit record) writes
 *              them from these.
 *   reconfigure  hot reload: the new run() options (allowed_updates,
 *              concurrency, retry settings, pacing).
 *   stop       a graceful stop begins: fetch no more, let go of what is
 *              held and not delivered (the webhook answers it 503). Then
 *              the runner either releases the updates delivered and not
 *              started (outcome RELEASED for each: only when the type's
 *              releases_unstarted says someone keeps them) or runs them,
 *              and once every update delivered has its end it calls
 *   drained    the source finishes its own part (polling confirms the
 *              offset with a last getUpdates) and then calls
 *              events->on_stopped once.
 *   abort      a forced stop: drop what is pending, confirm nothing; no
 *              event follows.
 *   free       (after stop + drained, after abort, or before start).
 *
 * Every event a source sends comes from the loop, never from inside a
 * libcurl callback; on_batch may come from inside fetch (the webhook hands
 * over what it holds at once): the runner allows for that.
 *
 * Adding a source: one module implementing these operations and one line
 * in host.c's table of sources. The runner, the sink and the Lua half do
 * not change: a redelivered update sets update_item.redelivered (Lua sees
 * ctx.redelivered), and outcomes tell a source when each update has ended
 * (a stream consumer commits, or drains a partition before handing it
 * over, from them).
 *
 * Layer: pipeline. */
#ifndef TGHOST_SOURCE_H
#define TGHOST_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "base/qlist.h"
#include "net/botapi.h"
#include "pipeline/runopts.h"
#include "pipeline/update.h"

enum update_outcome {
  UPDATE_STARTED,     /* it runs (not an end) */
  UPDATE_WAITING,     /* it waits without running (not an end) */
  UPDATE_DONE,        /* ran to its end, or needed no handler */
  UPDATE_FAILED,      /* its handler failed */
  UPDATE_TIMED_OUT,   /* ran past the per-update timeout, was cancelled */
  UPDATE_CUT_SHORT,   /* cancelled after it started: the drain timeout, a
                       * forced stop */
  UPDATE_RELEASED,    /* never started: handed back at a graceful stop */
  UPDATE_IDLE,        /* after WAITING: what it waits for is a later
                       * update (a conversation's ctx:wait), not other
                       * updates ending; it holds nothing back meanwhile
                       * (sequentialize lets the updates of its keys run) */
};

struct update_source;

/* What a source tells its owner (the runner, or a wrapping source). */
struct update_source_events {
  /* A batch of update_items (possibly empty), oldest first; the callee
   * takes them. via labels them in the metrics ("polling", "webhook",
   * "journal" for what it hands back). */
  void (*on_batch)(void *ud, struct qlist *batch, const char *via);
  /* Fetching makes sense again (a poll ended with no update, pacing is
   * over, a batch became durable, new requests are held). */
  void (*on_ready)(void *ud);
  /* An unrecoverable error: a one-line message. */
  void (*on_fatal)(void *ud, const char *message);
  /* The source has finished its part of a graceful stop (see drained). */
  void (*on_stopped)(void *ud);
  /* The source lost the right to run some updates it delivered (a
   * cluster partition moved away): those for which match(id, match_ud)
   * is true are cancelled if started (their end follows, CUT_SHORT) and
   * handed back at once if not (RELEASED). May be NULL for sources that
   * never revoke. */
  void (*on_revoke)(void *ud, bool (*match)(int64_t id, void *match_ud),
                    void *match_ud, const char *reason);
};

struct update_source_type {
  const char *name;                /* "polling", "webhook", "journal" */
  /* Updates delivered and not started may be handed back at a graceful
   * stop (RELEASED): someone keeps them (Telegram, until polling confirms
   * its offset; the journal's file). False: they were acknowledged (a
   * webhook's 200) and the runner runs them before it stops. */
  bool releases_unstarted;
  void (*start)(struct update_source *s);
  void (*fetch)(struct update_source *s, int limit);
  void (*accept)(struct update_source *s);
  /* reason: for FAILED / TIMED_OUT / CUT_SHORT, what went wrong (or
   * NULL); for DONE, "not started" when the update needed no handler. */
  void (*outcome)(struct update_source *s, int64_t update_id,
                  enum update_outcome outcome, const char *reason);
  /* Ids this source delivered before a restart, known from a wrapper's
   * record: it must not deliver them again (polling resumes after the
   * highest; the webhook answers a redelivery 200 without handing it
   * over). May be NULL (a source that cannot be handed the same update
   * twice). Called before start. */
  void (*known)(struct update_source *s, const int64_t *ids, size_t n);
  void (*reconfigure)(struct update_source *s, const struct run_options *o);
  void (*stop)(struct update_source *s);
  void (*drained)(struct update_source *s);
  void (*abort)(struct update_source *s);
  /* Publishes the source's state into the metric registry (gauges kept
   * lazily); called before /metrics or /healthz is answered. May be
   * NULL. */
  void (*health)(struct update_source *s);
  void (*free)(struct update_source *s);
};

/* The part every source shares; an implementation embeds it first. */
struct update_source {
  const struct update_source_type *type;
  const struct update_source_events *events;
  void *events_ud;
};

/* What a source is built from. */
struct update_source_params {
  struct event_base *base;
  struct botapi *api;              /* a client of its own: getUpdates,
                                    * setWebhook (never behind the calls of
                                    * handlers) */
  const struct run_options *opts;  /* run() with the command line applied;
                                    * read at creation only */
  int64_t bot_id;                  /* from the token; -1 if unknown */
  /* The script's own key for an update (a cluster's cluster.key), run
   * now, in the generation new updates start in: 1 with the key appended
   * to key, 0 when the script gives no such function, -1 with why in err.
   * NULL when there is no script. */
  int (*script_key)(void *ud, const char *json, size_t len, struct buf *key,
                    struct buf *err);
  void *script_key_ud;
};

/* A row of the host's table: a source the run options may ask for. */
struct update_source_entry {
  const char *name;
  bool (*wanted)(const struct update_source_params *p);
  /* NULL with err set when it cannot be used (an address taken, an
   * unreadable file). */
  struct update_source *(*create)(const struct update_source_params *p,
                                  const struct update_source_events *ev,
                                  void *ud, struct buf *err);
};

static inline void update_source_init(struct update_source *s,
                                      const struct update_source_type *type,
                                      const struct update_source_events *ev,
                                      void *ud) {
  s->type = type;
  s->events = ev;
  s->events_ud = ud;
}

/* The calls, for the runner and for wrappers. */
static inline void source_start(struct update_source *s) {
  s->type->start(s);
}
static inline void source_fetch(struct update_source *s, int limit) {
  s->type->fetch(s, limit);
}
static inline void source_accept(struct update_source *s) {
  s->type->accept(s);
}
static inline void source_outcome(struct update_source *s, int64_t id,
                                  enum update_outcome o, const char *reason) {
  s->type->outcome(s, id, o, reason);
}
static inline void source_known(struct update_source *s, const int64_t *ids,
                                size_t n) {
  if (s->type->known) s->type->known(s, ids, n);
}
static inline void source_reconfigure(struct update_source *s,
                                      const struct run_options *o) {
  s->type->reconfigure(s, o);
}
static inline void source_stop(struct update_source *s) { s->type->stop(s); }
static inline void source_drained(struct update_source *s) {
  s->type->drained(s);
}
static inline void source_abort(struct update_source *s) {
  s->type->abort(s);
}
static inline void source_health(struct update_source *s) {
  if (s->type->health) s->type->health(s);
}
static inline void source_free(struct update_source *s) {
  if (s) s->type->free(s);
}

/* The events a source sends, for implementations. */
static inline void source_deliver(struct update_source *s, struct qlist *batch,
                                  const char *via) {
  s->events->on_batch(s->events_ud, batch, via);
}
static inline void source_ready(struct update_source *s) {
  s->events->on_ready(s->events_ud);
}
static inline void source_fatal(struct update_source *s, const char *msg) {
  s->events->on_fatal(s->events_ud, msg);
}
static inline void source_stopped(struct update_source *s) {
  s->events->on_stopped(s->events_ud);
}
static inline void source_revoke(struct update_source *s,
                                 bool (*match)(int64_t id, void *match_ud),
                                 void *match_ud, const char *reason) {
  if (s->events->on_revoke)
    s->events->on_revoke(s->events_ud, match, match_ud, reason);
}

#endif
