/* A libFuzzer target for the journal reader (src/pipeline/journalfile.c):
 * whatever bytes a journal file holds (a crash mid-write, a flipped bit, a
 * block of zeros, a hostile length field), reading it must neither crash
 * nor read out of bounds, and what it makes of them must hold together:
 *
 *   1. the accounts: good records plus damaged and cut-off bytes cover the
 *      input; damaged updates are never more than the damaged regions
 *      could hold; every entry read has an id in bounds, and one still to
 *      run has its update;
 *   2. the round trip: the unfinished entries, written back as compaction
 *      writes them, read again without damage to the same entries (id,
 *      update, counters, state, end, the reason as the writer cuts it);
 *   3. a record appended to the input reads back whole after whatever
 *      the input left (damage ends where a good record starts), unless the
 *      input ends inside a record's payload.
 *
 * Built by the fuzz preset with libFuzzer, and by ctest with the plain
 * driver (fuzz_driver.c) over tests/fuzz/corpus/journal. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/journalfile.h"

#define REQUIRE(cond)                                                   \
  do {                                                                  \
    if (!(cond)) {                                                      \
      fprintf(stderr, "fuzz_journal: %s:%d: %s\n", __FILE__, __LINE__,  \
              #cond);                                                   \
      abort();                                                          \
    }                                                                   \
  } while (0)

static bool same_reason(const char *read, const char *written) {
  size_t len = read ? strcspn(read, "\r\n") : 0;
  if (len > JOURNAL_MAX_REASON) len = JOURNAL_MAX_REASON;
  size_t wlen = written ? strlen(written) : 0;
  return wlen == len && (len == 0 || memcmp(read, written, len) == 0);
}

static void check_round_trip(struct jfold *f) {
  struct buf out = BUF_INIT;
  journal_put_header(&out, f->bot_id >= 0 ? f->bot_id : 1);
  jfold_put_unfinished(f, &out);
  struct jfold g;
  jfold_read(&g, out.data, out.len);
  REQUIRE(g.header_ok && g.damaged_regions == 0 && !g.truncated);
  size_t unfinished = 0;
  for (size_t i = 0; i < f->n; i++) {
    const struct jentry *e = &f->e[i];
    if (!jentry_unfinished(e)) continue;
    unfinished++;
    struct jentry *w = jfold_find(&g, e->id);
    REQUIRE(w && jentry_unfinished(w));
    REQUIRE(w->len == e->len && memcmp(w->json, e->json, e->len) == 0);
    REQUIRE(w->crashes == e->crashes && w->failures == e->failures);
    REQUIRE(w->state == e->state && w->ended == e->ended);
    if (e->ended) {
      REQUIRE(w->end == e->end);
      REQUIRE(same_reason(e->reason, w->reason));
    }
  }
  size_t back = 0;
  for (size_t i = 0; i < g.n; i++) back += jentry_unfinished(&g.e[i]);
  REQUIRE(back == unfinished);
  jfold_free(&g);
  buf_free(&out);
}

/* A good record after the input is read, unless the input ends inside a
 * record (then it is that record's payload, rightly). */
static void check_resync(const uint8_t *data, size_t size,
                         const struct jfold *f) {
  if (f->truncated || size == 0) return;   /* empty: the probe would be
                                              * taken for the header */
  struct buf in = BUF_INIT;
  buf_append(&in, (const char *)data, size);
  if (size && data[size - 1] != '\n') buf_append_char(&in, '\n');
  static const char probe[] = "{\"update_id\":4611686018427387000}";
  journal_put_update(&in, 4611686018427387000LL, 3, 1, probe,
                     sizeof probe - 1);
  struct jfold g;
  jfold_read(&g, in.data, in.len);
  struct jentry *e = jfold_find(&g, 4611686018427387000LL);
  REQUIRE(e && e->json && e->len == sizeof probe - 1 && e->crashes == 3 &&
          e->failures == 1 && jentry_unfinished(e));
  jfold_free(&g);
  buf_free(&in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct jfold f;
  jfold_read(&f, (const char *)data, size);
  REQUIRE(f.damaged_bytes + f.truncated_bytes <= size);
  REQUIRE(f.damaged_updates <= f.damaged_bytes);
  REQUIRE(!f.damaged_regions || f.damaged_bytes > 0);
  for (size_t i = 0; i < f.n; i++) {
    const struct jentry *e = &f.e[i];
    REQUIRE(e->id >= 0 && e->id <= f.max_id);
    REQUIRE(!e->json || e->len <= JOURNAL_MAX_RECORD);
    REQUIRE(jfold_find(&f, e->id) == e);
  }
  check_round_trip(&f);
  check_resync(data, size, &f);
  jfold_free(&f);
  return 0;
}
