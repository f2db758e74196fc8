/* The feed: an update source (source.h) filled from the script, for bots
 * whose updates come from somewhere else than Telegram's getUpdates or a
 * webhook (a queue another program fills, a test): run(bot, { feed =
 * true }) and tghost.feed.push(update) from a task.
 *
 * One feed per process, outliving reloads and the runners that read it:
 * what is pushed waits in its queue, in order, until a runner's fetch asks
 * for updates, and is delivered from the loop (never from inside the
 * push). A pusher waits until its update has been accepted into the sink
 * (so a full sink holds the pushers back: the feed's backpressure), and
 * is told if the update was not taken (a stop or an abort dropped it).
 *
 * Updates delivered and not started are run before a graceful stop ends
 * (nobody else keeps them); updates still queued at the stop are handed
 * back to their pushers as not taken.
 *
 * Layer: pipeline. */
#ifndef TGHOST_FEED_H
#define TGHOST_FEED_H

#include <stdbool.h>

#include "pipeline/source.h"
#include "sched/task.h"

/* The table row (host.c): chosen by run() options feed = true. */
extern const struct update_source_entry feed_source_entry;

/* Queues an update (json taken over; id its update_id). waiter, if given,
 * is woken once the update has been accepted into the sink, with true, or
 * with false and why it was not taken; feed_forget(waiter) if it goes away
 * first. The event loop base is needed for the first push only. */
void feed_push(struct event_base *base, int64_t id, char *json, size_t len,
               struct task *waiter);
/* The waiting task was cancelled: do not wake it (its update stays). */
void feed_forget(struct task *waiter);
/* Updates queued and not yet delivered. */
size_t feed_queued(void);
/* Frees what the feed holds (at exit). */
void feed_shutdown(void);

#endif
