/* A libFuzzer target for the server-sent events parser (src/base/sse.c).
 *
 * For every input it checks:
 *   1. splitting never matters: the input fed whole, in pieces whose sizes
 *      come from the input's own bytes, and one byte at a time, gives the
 *      same events and the same final status (with a small max_event too,
 *      so the bounds are split-independent as well);
 *   2. stopping never matters: a reader that stops after every event and
 *      feeds the rest again gets the same events;
 *   3. every string handed out (type, data, id) is valid UTF-8, and the
 *      parser never reports more bytes used than it was given.
 * A failed check aborts (the driver saves the input). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/sse.h"

struct out {
  struct buf text;
  bool stop_each;
};

static void fail(const char *what) {
  fprintf(stderr, "fuzz_sse: %s\n", what);
  abort();
}

static bool valid_utf8(const char *s, size_t len) {
  struct buf b = BUF_INIT;
  sse_utf8_clean(s, len, &b);
  bool same = b.len == len && (len == 0 || memcmp(b.data, s, len) == 0);
  buf_free(&b);
  return same;
}

static void add_field(struct buf *b, const char *s, size_t len) {
  buf_printf(b, "%zu:", len);
  buf_append(b, s, len);
}

static bool on_event(void *ud, const struct sse_event *ev) {
  struct out *o = ud;
  if (!valid_utf8(ev->type, ev->type_len) ||
      !valid_utf8(ev->data, ev->data_len) || !valid_utf8(ev->id, ev->id_len))
    fail("an event holds invalid UTF-8");
  add_field(&o->text, ev->type, ev->type_len);
  add_field(&o->text, ev->data, ev->data_len);
  add_field(&o->text, ev->id, ev->id_len);
  buf_printf(&o->text, "%ld;", ev->retry_ms);
  return !o->stop_each;
}

/* Feeds data in pieces (piece_of(i) gives the i-th size, 0: all the rest)
 * and returns the events as text, with the final status and retry. */
static char *parse(const uint8_t *data, size_t len, size_t max_event,
                   int mode, bool stop_each) {
  struct sse_parser p;
  sse_init(&p, max_event);
  struct out o = {BUF_INIT, stop_each};
  size_t off = 0, k = 0;
  enum sse_status st = SSE_OK;
  while (off < len && st != SSE_TOO_LARGE) {
    size_t n = len - off;
    if (mode == 1) n = 1;
    if (mode == 2) n = 1 + data[k++ % len] % 13;
    if (n > len - off) n = len - off;
    size_t done = 0;
    while (done < n) {
      size_t used = 0;
      st = sse_feed(&p, (const char *)data + off + done, n - done, &used,
                    on_event, &o);
      if (used > n - done) fail("used more bytes than given");
      if (st == SSE_OK && used != n - done) fail("SSE_OK left bytes unused");
      if (st == SSE_TOO_LARGE) break;
      done += used;
    }
    off += n;
  }
  buf_printf(&o.text, "status %d retry %ld", st == SSE_TOO_LARGE,
             p.retry_ms);
  sse_finish(&p);
  sse_free(&p);
  return buf_steal(&o.text, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const size_t limits[] = {0, 24};
  for (int l = 0; l < 2; l++) {
    char *whole = parse(data, size, limits[l], 0, false);
    for (int mode = 0; mode < 3; mode++) {
      for (int stop = 0; stop < 2; stop++) {
        if (mode == 0 && !stop) continue;
        char *other = parse(data, size, limits[l], mode, stop);
        if (strcmp(whole, other) != 0) fail("a split changed the events");
        free(other);
      }
    }
    free(whole);
  }
  return 0;
}
