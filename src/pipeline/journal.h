/* The delivery journal (--journal FILE): updates survive a crash.
 *
 * Telegram forgets an update once a getUpdates with a higher offset has
 * been sent. With the journal, each fetched batch is appended to FILE and
 * made durable (one fsync per batch) before the runner sends the poll that
 * confirms it; each update's end is recorded (done, failed, timed out,
 * cancelled). At the next start the updates that did not finish are
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
#include "base/qlist.h"

#define JOURNAL_MAX_STARTS 3
#define JOURNAL_COMPACT_BYTES (4u << 20)

enum journal_outcome {
  JOURNAL_DONE,
  JOURNAL_FAILED,
  JOURNAL_TIMED_OUT,
  JOURNAL_CANCELLED,
};

struct journal;

/* Called on the loop once every batch appended so far is durable (ok), or
 * when writing failed (ok false, message says why). */
typedef void (*journal_durable_fn)(void *ud, bool ok, const char *message);

/* Opens (or creates) the journal at path for the bot bot_id, recovers it
 * and starts its thread. The updates to run again are moved into replay
 * (update_items, oldest first, marked redelivered); *max_id is the highest
 * update id the journal knows (-1 if none), so polling resumes after it.
 * Returns NULL with err set when the file cannot be used (unwritable, for
 * another bot). */
struct journal *journal_open(const char *path, int64_t bot_id,
                             struct event_base *base,
                             journal_durable_fn on_durable, void *ud,
                             struct qlist *replay, int64_t *max_id,
                             struct buf *err);
/* Writes what is queued, stops the thread, compacts the file and closes
 * it. */
void journal_close(struct journal *j);

/* Appends the batch's update_items (left where they are) and asks for an
 * fsync; on_durable follows. */
void journal_append_batch(struct journal *j, const struct qlist *batch);
/* Whether a batch appended is not durable yet. */
bool journal_pending(const struct journal *j);
/* Records that update id's handler has started. */
void journal_record_start(struct journal *j, int64_t id);
/* Records the end of update id. reason: for failures, what went wrong. */
void journal_record_end(struct journal *j, int64_t id,
                        enum journal_outcome outcome, const char *reason);

/* The ids of every update the file held when it was opened, finished or
 * not (what was fetched since its last compaction, and what is unfinished
 * from before), handed over once: the caller frees *ids. A webhook
 * receiver remembers them, so that Telegram delivering one again after a
 * crash does not run it twice. */
size_t journal_take_known_ids(struct journal *j, int64_t **ids);

/* Prints the dead letters of the journal at path to out; returns how many,
 * or -1 with err set. */
int journal_list_dead_letters(const char *path, FILE *out, struct buf *err);

/* The bot id of a token ("123456:ABC..." -> 123456), or -1. */
int64_t journal_bot_id_of_token(const char *token);

#endif
