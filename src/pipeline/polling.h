/* getUpdates long polling: an update source (source.h).
 *
 * Keeps the offset (last update_id + 1), asks for as many updates as the
 * runner has room for, and splits each response into per-update raw JSON
 * items without decoding them (decoding happens when an update starts, in
 * the generation that runs it). The next poll confirms the last batch to
 * Telegram, so none is sent before that batch was accepted. Failures
 * follow the retry policy (retry.h). Optional pacing trades latency for
 * fewer requests (speedTrafficBalance, as in grammY runner).
 *
 * Stopping: the pending poll is aborted; updates released unstarted stay
 * with Telegram (the offset confirmed at the end stops before the first of
 * them); once drained, a last getUpdates (timeout 0) confirms the offset
 * of everything else, so a restart neither loses nor repeats an update.
 *
 * Layer: pipeline. */
#ifndef TGHOST_POLLING_H
#define TGHOST_POLLING_H

#include "pipeline/source.h"

/* The table row (host.c): chosen when no other source is asked for. */
extern const struct update_source_entry polling_source_entry;

struct update_source *polling_new(const struct update_source_params *p,
                                  const struct update_source_events *ev,
                                  void *ud, struct buf *err);

#endif
