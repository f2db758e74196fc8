/* The delivery journal's file format (journal.h): records, each with a
 * CRC-32, and reading a file back into the state of each update. Pure: no
 * loop, no threads, no I/O (tests/fuzz/fuzz_journal.c fuzzes the reader).
 *
 * A file is a header line "tghost-journal 2 bot <bot id>", then records:
 *
 *   U <id> <crashes> <failures> <len> <crc>\n<update json>\n
 *                     fetched, or rewritten with its counters: how many
 *                     crashes it was running at, how many times it failed
 *   S <id> <crc>\n    it runs (its job started, or runs on after a wait)
 *   W <id> <crc>\n    it waits without running: behind other updates
 *                     (sequentialize) or for its user (a conversation)
 *   A <id> <crc>\n    it runs alone (after crashes; see journal.h), its
 *                     start on disk before its handler runs
 *   E <id> <d|f|t|c|x> <len> <crc>\n<reason>\n
 *                     it ended: done, failed, timed out, cut short, or
 *                     became a dead letter (written to FILE.dead already)
 *   O <n> <crc>\n     a run began after n runs in a row that crashed before
 *                     any update ended (written after the updates)
 *   C 0 <crc>\n       the run ended cleanly (the last record)
 *
 * The CRC covers the record's letter and numbers and its payload. Numbers
 * are decimal digits only, within bounds (ids and counters below 2^62, a
 * payload at most JOURNAL_MAX_RECORD bytes and within the data), so a bad
 * length field is damage, never a read out of bounds. Version 1 files
 * (no W, A, O, C or x; U's first counter counted starts) read the same
 * way.
 *
 * Damage: a record that does not parse or whose CRC does not match is
 * skipped up to the next place where a good record starts (at any byte:
 * the damage may have eaten a line break), so a flipped bit costs the
 * records it hit, not the rest of the file. The reader counts the damaged
 * regions, their bytes and the update records they held as far as their
 * first lines can still be recognised (a block of zeros leaves nothing to
 * recognise: the journal then counts the updates whose later records
 * survived without their update). A record cut off by the end of the data
 * (a crash in the middle of a write) is told apart from damage.
 *
 * Layer: pipeline (pure data). */
#ifndef TGHOST_JOURNALFILE_H
#define TGHOST_JOURNALFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define JOURNAL_VERSION 2
/* The longest payload a record may have (an update, a reason). */
#define JOURNAL_MAX_RECORD (16u << 20)
/* A failure's reason is kept this long at most. */
#define JOURNAL_MAX_REASON 300

enum jend {
  JEND_DONE,
  JEND_FAILED,
  JEND_TIMED_OUT,
  JEND_CUT_SHORT,
  JEND_DEAD,        /* a dead letter, written to FILE.dead */
};

/* Where an update stood at the last of its S, W and A records. */
enum jstate { JSTATE_NONE, JSTATE_RUNNING, JSTATE_WAITING, JSTATE_ALONE };

struct jentry {
  int64_t id;
  long crashes, failures;        /* from its U record */
  char *json;                    /* NULL: no U record read */
  size_t len;
  bool ended;
  enum jend end;
  char *reason;                  /* of its end ("" if none) */
  enum jstate state;             /* since its U record */
};

struct jfold {
  struct jentry *e;              /* in the order first seen */
  size_t n, cap;
  size_t *slots;                 /* open addressing: index + 1, 0 = empty */
  size_t nslots;
  bool header_ok;
  int version;
  int64_t bot_id;                /* from the header; -1 if none */
  int64_t max_id;                /* the highest id of any record; -1 */
  size_t records;                /* good records read */
  /* Runs: n of the last O record; whether an update ended after it;
   * whether the last record is C. */
  long streak;
  bool progress;
  bool clean;
  /* Damage (regions that are neither good records nor a cut-off tail). */
  size_t damaged_regions, damaged_bytes, damaged_updates;
  bool truncated;                /* the data ends inside a record */
  size_t truncated_bytes;
};

/* Reads data (the whole file; NULL or empty: a new journal). */
void jfold_read(struct jfold *f, const char *data, size_t size);
void jfold_free(struct jfold *f);
/* The entry of id, or NULL; jfold_add makes it if needed (zeroed). */
struct jentry *jfold_find(struct jfold *f, int64_t id);
struct jentry *jfold_add(struct jfold *f, int64_t id);
/* Whether the entry still has to run (read, and not ended done/dead). */
bool jentry_unfinished(const struct jentry *e);

/* Record writers: append one record to out. */
void journal_put_header(struct buf *out, int64_t bot_id);
void journal_put_update(struct buf *out, int64_t id, long crashes,
                        long failures, const char *json, size_t len);
/* kind: 'S', 'W', 'A', or 'O' (id: the streak) or 'C' (id 0). */
void journal_put_mark(struct buf *out, char kind, int64_t id);
/* reason (may be NULL) is cut at its first line break and at
 * JOURNAL_MAX_REASON bytes. */
void journal_put_end(struct buf *out, int64_t id, enum jend end,
                     const char *reason);
/* The unfinished entries of f as records, their state kept (U, then S, W
 * or A as read, then the end of one cut short, failed or timed out, not
 * counted yet): what compaction writes, after a header. */
void jfold_put_unfinished(const struct jfold *f, struct buf *out);

#endif
