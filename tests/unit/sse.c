/* Unit tests of the server-sent events parser (src/base/sse.c): a table
 * of cases taken from the WHATWG HTML standard's event-stream rules (its
 * own examples first), each fed whole, one byte at a time and in random
 * pieces, and stopped after every event and resumed; all five readings
 * must give the same events. Then the bounds, the UTF-8 decoder, and a
 * randomized test that splitting never changes what comes out.
 *
 * TGHOST_SSE_SEED=<n> replays one random schedule. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/sse.h"

static uint64_t current_seed;
#define CHECK_ON_FAILURE() \
  fprintf(stderr, "  (seed %" PRIu64 ")\n", current_seed)
#include "check.h"
#include "testreg.h"

static uint64_t rng_state;
static uint64_t rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dULL;
}

/* Events as text: "[type] data (id) {retry}" joined by " | ". */
struct collect {
  struct buf out;
  int events;
  int stop_every;   /* >0: ask to stop after every nth event */
};

static bool on_event(void *ud, const struct sse_event *ev) {
  struct collect *c = ud;
  if (c->events++) buf_append_str(&c->out, " | ");
  buf_append_char(&c->out, '[');
  buf_append(&c->out, ev->type, ev->type_len);
  buf_append_str(&c->out, "] ");
  buf_append(&c->out, ev->data, ev->data_len);
  if (ev->id_len) {
    buf_append_str(&c->out, " (");
    buf_append(&c->out, ev->id, ev->id_len);
    buf_append_char(&c->out, ')');
  }
  if (ev->retry_ms >= 0) buf_printf(&c->out, " {%ld}", ev->retry_ms);
  return !(c->stop_every > 0 && c->events % c->stop_every == 0);
}

/* Feeds input in pieces of the given sizes (0: the rest), resuming after
 * every stop; returns the final status. */
static enum sse_status feed_all(struct sse_parser *p, const char *in,
                                size_t len, const size_t *pieces,
                                struct collect *c) {
  size_t off = 0, k = 0;
  while (off < len) {
    size_t n = pieces && pieces[k] ? pieces[k++] : len - off;
    if (n > len - off) n = len - off;
    size_t done = 0;
    while (done < n) {
      size_t used = 0;
      enum sse_status st = sse_feed(p, in + off + done, n - done, &used,
                                    on_event, c);
      if (st == SSE_TOO_LARGE) return st;
      CHECK(used <= n - done, "used %zu of %zu", used, n - done);
      CHECK(st == SSE_STOPPED || used == n - done,
            "SSE_OK with %zu of %zu bytes used", used, n - done);
      done += used;
    }
    off += n;
  }
  return SSE_OK;
}

/* Reads input in five ways and returns the events (malloc'd); all five
 * must agree. */
static char *parse_every_way(const char *in, size_t len, long *retry) {
  char *first = NULL;
  for (int way = 0; way < 5; way++) {
    struct sse_parser p;
    sse_init(&p, 0);
    struct collect c = {BUF_INIT, 0, 0};
    size_t *pieces = NULL;
    if (way == 1 || way == 2) {          /* byte by byte; random pieces */
      pieces = calloc(len + 1, sizeof *pieces);
      for (size_t i = 0, left = len; left; i++) {
        size_t n = way == 1 ? 1 : 1 + (size_t)(rnd() % 7);
        if (n > left) n = left;
        pieces[i] = n;
        left -= n;
      }
    }
    if (way == 3) c.stop_every = 1;      /* stop after every event */
    if (way == 4) c.stop_every = 2;
    CHECK(feed_all(&p, in, len, pieces, &c) == SSE_OK, "too large?");
    sse_finish(&p);
    if (retry) *retry = p.retry_ms;
    free(pieces);
    char *got = c.out.data ? buf_steal(&c.out, NULL) : xstrdup("");
    sse_free(&p);
    if (!first) {
      first = got;
      continue;
    }
    CHECK(strcmp(first, got) == 0, "reading %d gave '%s', whole gave '%s'",
          way, got, first);
    free(got);
  }
  return first;
}

struct sse_case {
  const char *name;
  const char *input;
  size_t len;       /* 0: strlen(input) */
  const char *want;
};

#define L(s) s, sizeof s - 1

static const struct sse_case cases[] = {
    /* The standard's own examples. */
    {"stock ticker: data lines join with LF",
     L("data: YHOO\ndata: +2\ndata: 10\n\n"), "[message] YHOO\n+2\n10"},
    {"comment, ids, no space after the colon, unfinished last event",
     L(": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\n"
       "data:  third event\n"),
     "[message] first event (1) | [message] second event"},
    {"data alone is an empty value; a final event without a blank line is "
     "dropped",
     L("data\n\ndata\ndata\n\ndata:"), "[message]  | [message] \n"},
    {"one space after the colon is dropped, no more",
     L("data:test\n\ndata: test\n\n"), "[message] test | [message] test"},
    {"event types",
     L("event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\n"
       "event: add\ndata: 113411\n\n"),
     "[add] 73857293 | [remove] 2153 | [add] 113411"},
    /* Line ends. */
    {"CRLF", L("data: a\r\ndata: b\r\n\r\n"), "[message] a\nb"},
    {"CR alone", L("data: a\rdata: b\r\r"), "[message] a\nb"},
    {"mixed line ends",
     L("data: a\r\n\rdata: b\n\r\nevent: x\rdata: c\n\n"),
     "[message] a | [message] b | [x] c"},
    {"CR CR is two line ends, LF CR too", L("data: a\r\rdata: b\n\r"),
     "[message] a | [message] b"},
    /* Fields. */
    {"comments only", L(": hi\n:\n: data: x\n\n"), ""},
    {"unknown fields are ignored", L("foo: bar\ndata: x\nDATA: y\n\n"),
     "[message] x"},
    {"a colon inside the value stays", L("data: a:b: c\n\n"), "[message] a:b: c"},
    {"two spaces keep one", L("data:  x\n\n"), "[message]  x"},
    {"an empty data value", L("data: \n\n"), "[message] "},
    {"an event without data is not dispatched, and its type is forgotten",
     L("event: x\n\ndata: y\n\n"), "[message] y"},
    {"an empty event type is message", L("event:\ndata: y\n\n"), "[message] y"},
    {"the last event ID persists; id alone clears it",
     L("id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\n"),
     "[message] a (7) | [message] b (7) | [message] c"},
    {"an id with NUL is ignored",
     L("id: 1\ndata: a\n\nid: 2\0003\ndata: b\n\n"),
     "[message] a (1) | [message] b (1)"},
    {"an id alone sets it for later events", L("id: 5\n\ndata: a\n\n"),
     "[message] a (5)"},
    {"retry with digits sets the reconnection time",
     L("retry: 1500\ndata: a\n\n"), "[message] a {1500}"},
    {"retry that is not all digits is ignored",
     L("retry: 1500\n\nretry: 15x\ndata: a\n\nretry:\nretry: -1\n"
       "retry: 2 0\ndata: b\n\n"),
     "[message] a {1500} | [message] b {1500}"},
    /* The BOM and UTF-8. */
    {"a leading BOM is dropped", L("\xEF\xBB\xBF" "data: x\n\n"), "[message] x"},
    {"only one BOM is dropped",
     L("\xEF\xBB\xBF\xEF\xBB\xBF" "data: x\n\ndata: y\n\n"), "[message] y"},
    {"a BOM's first byte alone starts a line",
     L("\xEF" "data: x\n\ndata: y\n\n"), "[message] y"},
    {"bytes that are not UTF-8 become U+FFFD",
     L("data: \xFF\xC3 a\n\n"), "[message] \xEF\xBF\xBD\xEF\xBF\xBD a"},
    {"a truncated sequence is one U+FFFD", L("data: \xE2\x82\n\n"),
     "[message] \xEF\xBF\xBD"},
    {"four-byte sequences pass", L("data: \xF0\x9F\x98\x80!\n\n"),
     "[message] \xF0\x9F\x98\x80!"},
    {"a final event without a blank line is dropped at the end",
     L("data: a\n\ndata: b\n"), "[message] a"},
    {"nothing at all", L(""), ""},
};

TEST(whatwg_cases) {
  current_seed = 1;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const struct sse_case *tc = &cases[i];
    rng_state = 0x9E3779B97F4A7C15ULL + i;
    char *got = parse_every_way(tc->input, tc->len, NULL);
    CHECK(strcmp(got, tc->want) == 0, "case '%s': got '%s', want '%s'",
          tc->name, got, tc->want);
    free(got);
  }
}

/* The reconnection time is the parser's state even without an event. */
TEST(retry_state) {
  long retry = 0;
  char *got = parse_every_way(L("retry: 3000\n\n: x\n"), &retry);
  CHECK(strcmp(got, "") == 0, "events: %s", got);
  CHECK(retry == 3000, "retry %ld", retry);
  free(got);
  got = parse_every_way(L("retry: 99999999999999999999999\n\n"), &retry);
  CHECK(retry > 0, "a huge retry overflowed to %ld", retry);
  free(got);
}

/* A line or an event's data past max_event fails the stream, however it
 * is split, and stays failed. */
TEST(bounds) {
  current_seed = 2;
  static const char *const inputs[] = {
      "data: 0123456789abcdef0123456789\n\n",              /* a long line */
      "data: 0123456\ndata: 0123456\ndata: 0123456\n\n",   /* long data */
      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",   /* no line end */
  };
  for (int i = 0; i < 3; i++) {
    for (int way = 0; way < 2; way++) {
      struct sse_parser p;
      sse_init(&p, 20);
      struct collect c = {BUF_INIT, 0, 0};
      size_t ones[64];
      for (int k = 0; k < 64; k++) ones[k] = 1;
      enum sse_status st = feed_all(&p, inputs[i], strlen(inputs[i]),
                                    way ? ones : NULL, &c);
      CHECK(st == SSE_TOO_LARGE, "input %d way %d: status %d", i, way, st);
      CHECK(c.events == 0, "input %d dispatched %d events", i, c.events);
      size_t used;
      CHECK(sse_feed(&p, "\n\n", 2, &used, on_event, &c) == SSE_TOO_LARGE,
            "a failed parser went on");
      buf_free(&c.out);
      sse_free(&p);
    }
  }
  /* Just under the bound passes. */
  struct sse_parser p;
  sse_init(&p, 20);
  struct collect c = {BUF_INIT, 0, 0};
  size_t used;
  CHECK(sse_feed(&p, L("data: 0123456789abcd\n\n"), &used, on_event, &c) ==
            SSE_OK && c.events == 1,
        "a 20-byte line was refused");
  buf_free(&c.out);
  sse_free(&p);
}

static bool valid_utf8(const char *s, size_t len) {
  struct buf b = BUF_INIT;
  sse_utf8_clean(s, len, &b);
  bool same = b.len == len && (len == 0 || memcmp(b.data, s, len) == 0);
  buf_free(&b);
  return same;
}

TEST(utf8_decoder) {
  struct {
    const char *in;
    size_t len;
    const char *want;
  } t[] = {
      {L("plain"), "plain"},
      {L("\xC3\xA9"), "\xC3\xA9"},
      {L("\xC0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD"},                 /* overlong */
      {L("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},  /* surrogate */
      {L("\xF4\x90\x80\x80"),                                    /* > U+10FFFF */
       "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
      {L("\xE2\x82\xAC"), "\xE2\x82\xAC"},
      {L("\xE2\x82" "a"), "\xEF\xBF\xBD" "a"},                     /* maximal subpart */
      {L("\xF0\x9F\x98"), "\xEF\xBF\xBD"},
      {L("\x80\xBF"), "\xEF\xBF\xBD\xEF\xBF\xBD"},
      {L("\xFE\xFF"), "\xEF\xBF\xBD\xEF\xBF\xBD"},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    struct buf b = BUF_INIT;
    sse_utf8_clean(t[i].in, t[i].len, &b);
    CHECK(b.len == strlen(t[i].want) && memcmp(b.data, t[i].want, b.len) == 0,
          "case %zu: got %zu bytes", i, b.len);
    CHECK(valid_utf8(b.data, b.len), "case %zu: output not stable", i);
    buf_free(&b);
  }
}

/* Random streams built from a vocabulary of fields, line ends, BOMs and
 * stray bytes: every split gives the events of the whole, and everything
 * handed out is valid UTF-8. */
struct check_utf8 {
  struct collect c;
};

static bool on_event_utf8(void *ud, const struct sse_event *ev) {
  CHECK(valid_utf8(ev->type, ev->type_len) && valid_utf8(ev->data, ev->data_len) &&
            valid_utf8(ev->id, ev->id_len),
        "an event held invalid UTF-8");
  return on_event(ud, ev);
}

TEST(random_splits) {
  static const char *const parts[] = {
      "data: ", "data:", "data", "event: ", "id: ", "id", "retry: ", "12",
      ":", " ", "x", "héllo", "\r", "\n", "\r\n", "\xEF\xBB\xBF", "\xFF",
      "\xE2\x82", "\xAC", "\0", "é", "event", "foo: "};
  const char *env = getenv("TGHOST_SSE_SEED");
  uint64_t first = env ? strtoull(env, NULL, 10) : 1;
  uint64_t last = env ? first : 400;
  for (uint64_t seed = first; seed <= last; seed++) {
    current_seed = seed;
    rng_state = seed * 0x9E3779B97F4A7C15ULL + 7;
    struct buf in = BUF_INIT;
    int n = 1 + (int)(rnd() % 60);
    for (int i = 0; i < n; i++) {
      const char *pt = parts[rnd() % (sizeof parts / sizeof parts[0])];
      buf_append(&in, pt, *pt ? strlen(pt) : 1);
    }
    char *whole = NULL;
    for (int way = 0; way < 3; way++) {
      struct sse_parser p;
      sse_init(&p, 0);
      struct collect c = {BUF_INIT, 0, way == 2 ? 1 : 0};
      size_t off = 0;
      while (off < in.len) {
        size_t len = way == 0 ? in.len - off : 1 + (size_t)(rnd() % 5);
        if (len > in.len - off) len = in.len - off;
        size_t used;
        enum sse_status st = sse_feed(&p, in.data + off, len, &used,
                                      on_event_utf8, &c);
        CHECK(st != SSE_TOO_LARGE, "too large");
        off += used;
      }
      sse_finish(&p);
      sse_free(&p);
      char *got = c.out.data ? buf_steal(&c.out, NULL) : xstrdup("");
      if (!whole) {
        whole = got;
      } else {
        CHECK(strcmp(whole, got) == 0, "split %d gave '%s', whole '%s'", way,
              got, whole);
        free(got);
      }
    }
    free(whole);
    buf_free(&in);
  }
}
