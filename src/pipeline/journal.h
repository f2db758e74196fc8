/* The delivery journal (--journal FILE): updates survive a crash.
 *
 * An update source that wraps another (source.h): polling or the webhook.
 * Telegram forgets an update once a getUpdates with a higher offset has
 * been sent (or once its webhook POST was answered 200). With the journal,
 * each batch the inner source delivers is appended to FILE and made
 * durable (one fsync per batch) before the inner source is told it was
 * accepted (the poll that confirms it, the 200s). Then each update's life
 * is recorded: it runs (S), it waits without running (W: parked behind
 * other updates by sequentialize, or a conversation waiting for its user),
 * it runs on (S), it ends (E: done, failed, timed out, cut short). At the
 * next start the updates that did not finish are handed back, oldest
 * first, marked redelivered (ctx.redelivered), to run before anything new.
 *
 * Who is to blame when tghost dies (a crash, kill -9, the OOM killer):
 * only the updates that were running at that moment, not those parked or
 * waiting for their user, nor those not started. Each keeps a count of the
 * crashes it was running at. An update with one such crash runs again with
 * the others; one with JOURNAL_ISOLATE_AFTER runs alone: before anything
 * else, one at a time, with nothing beside it and its start (A) on disk
 * before its handler runs. If tghost dies while an update runs alone, that
 * update was the only one running: after JOURNAL_ALONE_STOPS such stops
 * (two, so that one unlucky kill -9 during a slow handler is forgiven) it
 * becomes a dead letter. So an update that kills tghost costs four
 * restarts (five if its start had not reached the file) and is set aside, and the updates that happened to run beside
 * it (which finish when run alone) are not. Cut short by the drain timeout
 * or a forced stop counts as such a stop too.
 *
 * A crash before the start of the update that caused it reached the file
 * (the thread writes it within microseconds) leaves no one to blame; so
 * the journal also counts runs that died before any update ended: after
 * JOURNAL_CRASH_LOOP_RUNS of them in a row, everything unfinished runs
 * alone, one at a time, until the culprit is found.
 *
 * Failed or timed out: run once more at the next start; failing again
 * makes it a dead letter at once (JOURNAL_MAX_FAILURES). Whatever happens,
 * JOURNAL_MAX_CRASHES stops while it ran make one.
 *
 * Dead letters are appended to FILE.dead (created 0600: it holds users'
 * messages) as JSON lines ({"update_id", "reason", "at", "update"}) as
 * soon as they are dead, and listed by `tghost --journal FILE
 * --dead-letters`. No record and no dead letter holds the bot token: error
 * texts are redacted before they are written.
 *
 * An update can run twice only when the process died after its handler
 * had finished and before its end reached the file (the end is written at
 * once, by the journal's thread, without waiting for an fsync).
 *
 * One process per journal: FILE.lock is held with flock(2) while tghost
 * runs; a second process on the same journal refuses to start, saying
 * which pid holds it.
 *
 * Damage (a flipped bit, a block of zeros, a damaged header) costs only
 * the records it hit: the reader skips to the next good record, the
 * original file is kept as FILE.corrupt and the log says how many regions
 * and update records were lost. A record cut off at the end (a crash while
 * writing) is dropped with a warning. See journalfile.h for the format.
 *
 * All file I/O after the start runs on a thread of the journal's own; the
 * loop hears of a batch being durable through an event. The file is
 * compacted on that thread whenever it has grown by JOURNAL_COMPACT_BYTES:
 * it is rewritten (through FILE.tmp, created anew and never through a
 * symlink, and a rename) with only the updates that have not finished, so
 * its size follows what is in flight, not history.
 *
 * Layer: pipeline (POSIX threads and files; no Lua). */
#ifndef TGHOST_JOURNAL_H
#define TGHOST_JOURNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <event2/event.h>

#include "base/buf.h"
#include "pipeline/source.h"

#define JOURNAL_ISOLATE_AFTER 2
#define JOURNAL_ALONE_STOPS 2
#define JOURNAL_CRASH_LOOP_RUNS 2
#define JOURNAL_MAX_FAILURES 2
#define JOURNAL_MAX_CRASHES 5
#define JOURNAL_COMPACT_BYTES (4u << 20)

/* Wraps inner (taken over) in the journal at path, for the bot bot_id:
 * opens (or creates) the file, recovers it and starts its thread. The
 * updates to run again are handed back at start, before anything new,
 * marked redelivered; inner is told at once which ids the file knew
 * (polling resumes after them, the webhook answers a redelivery 200).
 * Inner's batches are appended to the file and go on to the runner at
 * once; the runner's accept reaches inner once they are durable, so
 * nothing is confirmed to Telegram without a record. The outcomes are the
 * journal's: inner sees none (its part ended when the update was on
 * disk). Returns NULL with err set when the file cannot be used
 * (unwritable, for another bot); inner is freed then. */
struct update_source *journal_source_new(const char *path, int64_t bot_id,
                                         struct update_source *inner,
                                         struct event_base *base,
                                         struct buf *err);

/* Prints the dead letters of the journal at path to out; returns how many,
 * or -1 with err set. */
int journal_list_dead_letters(const char *path, FILE *out, struct buf *err);

/* The bot id of a token ("123456:ABC..." -> 123456), or -1. */
int64_t journal_bot_id_of_token(const char *token);

#endif
