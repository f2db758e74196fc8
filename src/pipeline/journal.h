/* The delivery journal (--journal FILE): updates survive a crash.
 *
 * An update source that wraps another (source.h): polling or the webhook.
 * Telegram forgets an update once a getUpdates with a higher offset has
 * been sent (or once its webhook POST was answered 200). With the journal,
 * each batch the inner source delivers is appended to FILE and made
 * durable (one fsync per batch) before the inner source is told it was
 * accepted (the poll that confirms it, the 200s); each update's start and
 * end are recorded (done, failed, timed out, cancelled). At the next start the updates that did not finish are
 * handed back, oldest first, to run before anything new.
 *
 * The policy for updates that keep going wrong, so that one update can
 * never make a crash loop:
 *   - failed or timed out: run once more at the next start; failing again
 *     makes it a dead letter;
 *   - cut short after its handler had started (a crash, kill -9, the drain
 *     timeout, a forced stop): run again at the next start; an update
 *     whose handler was started JOURNAL_MAX_STARTS times without finishing
 *     becomes a dead letter. (One cut short before it started does not
 *     count.)
 * Dead letters are appended to FILE.dead as JSON lines ({"update_id",
 * "reason", "at", "update"}) and listed by `tghost --journal FILE
 * --dead-letters`.
 *
 * An update can run twice only when the process died after its handler
 * had finished and before its end reached the file (the end is written at
 * once, by the journal's thread, without waiting for an fsync).
 *
 * All file I/O after the start runs on a thread of the journal's own; the
 * loop hears of a batch being durable through an event. The file is
 * compacted on that thread whenever it has grown by JOURNAL_COMPACT_BYTES:
 * it is rewritten with only the updates that have not finished, so its
 * size follows what is in flight, not history.
 *
 * Format: a header line "tghost-journal 1 bot <bot id>", then records,
 * each with a CRC-32: "U <id> <starts> <failures> <len> <crc>\n<update
 * json>\n" (fetched), "S <id> <crc>\n" (its handler started) and
 * "E <id> <d|f|t|c> <len> <crc>\n<reason>\n" (it ended). A damaged or
 * truncated record (a crash mid-write) ends the readable part: it and what
 * follows are skipped with a warning.
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

#define JOURNAL_MAX_STARTS 3
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
