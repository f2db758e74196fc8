/* A request's head (src/net/httphead.c): where it ends, what is accepted
 * and what is refused with which status.
 *
 *   cases        heads written out, each with the status it must get and,
 *                when accepted, what must be read from it;
 *   split_scan   random heads fed to httphead_scan in random pieces end
 *                exactly where the whole head ends, however they are cut,
 *                and parse to the fields they were made of;
 *   mutations    random heads with random bytes changed, cut or repeated:
 *                never read past their end (ASan), and an accepted one
 *                holds only what the rules allow.
 *
 * TGHOST_HTTPHEAD_SEED=<n> replays one random head. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "net/httphead.h"

#define CHECK_ON_FAILURE() \
  fprintf(stderr, "  (seed %" PRIu64 ")\n", current_seed)
#include "check.h"
#include "testreg.h"

static uint64_t current_seed;
static uint64_t rng_state;
static uint64_t rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dULL;
}

/* Parses a copy of exactly the head's bytes (ASan sees any read past
 * it), kept until the next call: h points into it. */
static int parse(const char *text, struct httphead *h, const char **why) {
  static char *copy;
  free(copy);
  size_t len = strlen(text);
  copy = xmalloc(len ? len : 1);
  memcpy(copy, text, len);
  return httphead_parse(h, copy, len, why);
}

struct head_case {
  const char *text;
  int code;
  int64_t content_length;   /* when accepted */
  bool keep_alive;
};

TEST(cases) {
  static const struct head_case cases[] = {
      {"POST /hook HTTP/1.1\r\nContent-Length: 5\r\n\r\n", 0, 5, true},
      {"GET / HTTP/1.1\r\n\r\n", 0, -1, true},
      {"GET / HTTP/1.0\r\n\r\n", 0, -1, false},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0, -1, true},
      {"GET / HTTP/1.1\r\nConnection: Upgrade, close\r\n\r\n", 0, -1, false},
      {"GET / HTTP/1.1\nHost: x\n\n", 0, -1, true},          /* bare LF */
      {"POST / HTTP/1.1\r\nContent-Length:  7 \r\n\r\n", 0, 7, true},
      {"POST / HTTP/1.1\r\nContent-Length: 7\r\ncontent-length: 7\r\n\r\n",
       0, 7, true},                                           /* equal twice */
      {"POST / HTTP/1.1\r\nContent-Length: 000000000000000012\r\n\r\n", 0, 12,
       true},
      {"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
       0, 3, true},
      /* Content-Length, strictly */
      {"POST / HTTP/1.1\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n",
       400, 0, false},
      {"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
       400, 0, false},
      {"POST / HTTP/1.1\r\nContent-Length: 1234567890123456789\r\n\r\n", 400,
       0, false},
      {"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, 0, false},
      {"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n", 400, 0, false},
      {"POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", 400, 0, false},
      {"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", 400, 0, false},
      {"POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", 400, 0, false},
      {"POST / HTTP/1.1\r\nContent-Length: \r\n\r\n", 400, 0, false},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5"
       "\r\n\r\n", 400, 0, false},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, 0,
       false},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
       "Transfer-Encoding: chunked\r\n\r\n", 501, 0, false},
      {"HEAD / HTTP/1.1\r\nContent-Length: 4\r\n\r\n", 400, 0, false},
      {"POST / HTTP/1.1\r\nExpect: something\r\n\r\n", 417, 0, false},
      /* the request line */
      {"\r\nGET / HTTP/1.1\r\n\r\n", 400, 0, false},
      {"GET  / HTTP/1.1\r\n\r\n", 400, 0, false},
      {"GET / HTTP/1.1 \r\n\r\n", 400, 0, false},
      {"GET /a b HTTP/1.1\r\n\r\n", 400, 0, false},
      {"GET\t/ HTTP/1.1\r\n\r\n", 400, 0, false},
      {"GET / HTTP/2.0\r\n\r\n", 505, 0, false},
      {"GET / http/1.1\r\n\r\n", 400, 0, false},
      {"TRACE / HTTP/1.1\r\n\r\n", 501, 0, false},
      {"CONNECT x:1 HTTP/1.1\r\n\r\n", 501, 0, false},
      {"get / HTTP/1.1\r\n\r\n", 501, 0, false},
      {"G(T / HTTP/1.1\r\n\r\n", 400, 0, false},
      /* header lines */
      {"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, 0, false},
      {"GET / HTTP/1.1\r\nHost: x\r\n  folded\r\n\r\n", 400, 0, false},
      {"GET / HTTP/1.1\r\nNo colon here\r\n\r\n", 400, 0, false},
      {"GET / HTTP/1.1\r\n: empty name\r\n\r\n", 400, 0, false},
      {"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 400, 0, false},
      {"GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n", 400, 0, false},
      {"GET / HTTP/1.1\r\nX: \xc3\xa9t\xc3\xa9\r\n\r\n", 0, -1, true},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    const struct head_case *c = &cases[i];
    struct httphead h;
    const char *why = NULL;
    int rc = parse(c->text, &h, &why);
    CHECK(rc == c->code, "case %zu (%s): got %d (%s), want %d", i, c->text,
          rc, why ? why : "", c->code);
    if (rc) {
      CHECK(why && *why, "case %zu: a refusal says why", i);
      continue;
    }
    CHECK(h.content_length == c->content_length,
          "case %zu: Content-Length %lld", i, (long long)h.content_length);
    CHECK(h.keep_alive == c->keep_alive, "case %zu: keep-alive", i);
  }

  /* A NUL inside a value (strlen cannot carry it). */
  static const char nul[] = "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n";
  struct httphead h;
  const char *why;
  CHECK(httphead_parse(&h, nul, sizeof nul - 1, &why) == 400, "a NUL byte");

  /* What an accepted head gives back. */
  CHECK(parse("POST /tg/hook?x=1 HTTP/1.1\r\nHost: bot\r\n"
              "X-Telegram-Bot-Api-Secret-Token:  s3cr3t \r\n"
              "Content-Length: 2\r\n\r\n", &h, &why) == 0, "%s", why);
  CHECK(h.method == HTTPHEAD_POST && h.minor == 1, "method and version");
  CHECK(h.target_len == 12 && memcmp(h.target, "/tg/hook?x=1", 12) == 0,
        "target");
  size_t len;
  const char *v = httphead_field(&h, "x-telegram-bot-api-secret-token", &len);
  CHECK(v && len == 6 && memcmp(v, "s3cr3t", 6) == 0, "a field, any case");
  CHECK(!httphead_field(&h, "Cookie", &len), "no such field");

  /* Too many header lines. */
  struct buf many = BUF_INIT;
  buf_append_str(&many, "GET / HTTP/1.1\r\n");
  for (int i = 0; i <= HTTPHEAD_MAX_FIELDS; i++)
    buf_printf(&many, "X-%d: %d\r\n", i, i);
  buf_append_str(&many, "\r\n");
  CHECK(parse(many.data, &h, &why) == 431, "one line too many");
  buf_free(&many);

  /* The scan finds the first empty line, CRLF or LF. */
  static const char *const ends[] = {"GET / HTTP/1.1\r\n\r\nBODY",
                                     "GET / HTTP/1.1\n\nBODY",
                                     "GET / HTTP/1.1\r\nA: b\n\r\nBODY"};
  for (size_t i = 0; i < 3; i++) {
    struct httphead_scan s = {0};
    size_t n = strlen(ends[i]);
    size_t used = httphead_scan(&s, ends[i], n);
    CHECK(s.done && used == n - 4 && s.size == n - 4, "end %zu: %zu", i, used);
  }
  struct httphead_scan s = {0};
  CHECK(httphead_scan(&s, "GET / HTTP/1.1\r\n\r\r\n", 19) == 19 && !s.done,
        "a line holding only CR CR is not the end");
}

/* A random head that must be accepted; its Content-Length in *length. */
static void random_head(struct buf *out, int64_t *length, char *secret,
                        size_t secret_cap) {
  static const char *const methods[] = {"GET", "POST", "PUT", "DELETE",
                                        "OPTIONS", "PATCH"};
  const char *m = methods[rnd() % 6];
  buf_printf(out, "%s /p%llu?q=%llu HTTP/1.%d%s", m,
             (unsigned long long)(rnd() % 1000),
             (unsigned long long)(rnd() % 1000), (int)(rnd() % 2),
             rnd() % 3 ? "\r\n" : "\n");
  *length = rnd() % 2 ? (int64_t)(rnd() % 100000) : -1;
  if (*length >= 0)
    buf_printf(out, "Content-Length: %lld\r\n", (long long)*length);
  size_t fields = rnd() % 20;
  size_t secret_at = rnd() % (fields + 1);
  snprintf(secret, secret_cap, "s%llu", (unsigned long long)rnd());
  for (size_t i = 0; i <= fields; i++) {
    const char *eol = rnd() % 3 ? "\r\n" : "\n";
    if (i == secret_at)
      buf_printf(out, "X-Telegram-Bot-Api-Secret-Token:%s%s%s%s",
                 rnd() % 2 ? " " : "", secret, rnd() % 2 ? " \t" : "", eol);
    else
      buf_printf(out, "X-F%zu: v%llu%s", i, (unsigned long long)rnd(), eol);
  }
  buf_append_str(out, rnd() % 2 ? "\r\n" : "\n");
}

TEST(split_scan) {
  const char *seed_env = getenv("TGHOST_HTTPHEAD_SEED");
  uint64_t first = seed_env ? strtoull(seed_env, NULL, 10) : 1;
  int runs = seed_env ? 1 : 3000;
  for (int run = 0; run < runs; run++) {
    current_seed = first + (uint64_t)run;
    rng_state = current_seed * 2654435761u + 7;
    struct buf head = BUF_INIT;
    int64_t length;
    char secret[32];
    random_head(&head, &length, secret, sizeof secret);
    size_t head_len = head.len;
    buf_append_str(&head, "BODY BYTES\r\n\r\nGET / HTTP/1.1\r\n\r\n");
    /* Fed in random pieces, the scan stops at the head's end. */
    struct httphead_scan s = {0};
    size_t at = 0;
    while (!s.done && at < head.len) {
      size_t piece = 1 + rnd() % 40;
      if (piece > head.len - at) piece = head.len - at;
      size_t used = httphead_scan(&s, head.data + at, piece);
      CHECK(used == piece || s.done, "a piece half used without an end");
      at += used;
    }
    CHECK(s.done && at == head_len && s.size == head_len,
          "the end at %zu, not %zu", at, head_len);
    struct httphead h;
    const char *why = NULL;
    int rc = httphead_parse(&h, head.data, head_len, &why);
    CHECK(rc == 0, "a valid head refused: %d %s\n%s", rc, why, head.data);
    CHECK(h.content_length == length, "Content-Length %lld, not %lld",
          (long long)h.content_length, (long long)length);
    size_t len;
    const char *v = httphead_field(&h, "X-Telegram-Bot-Api-Secret-Token",
                                   &len);
    CHECK(v && len == strlen(secret) && memcmp(v, secret, len) == 0,
          "the secret field");
    buf_free(&head);
  }
}

TEST(mutations) {
  for (int run = 0; run < 20000; run++) {
    current_seed = 100000 + (uint64_t)run;
    rng_state = current_seed * 2654435761u + 11;
    struct buf head = BUF_INIT;
    int64_t length;
    char secret[32];
    random_head(&head, &length, secret, sizeof secret);
    size_t changes = 1 + rnd() % 4;
    for (size_t i = 0; i < changes && head.len; i++) {
      size_t at = rnd() % head.len;
      switch (rnd() % 3) {
        case 0:   /* a byte changed */
          head.data[at] = (char)(rnd() % 256);
          break;
        case 1:   /* cut short */
          head.len = at;
          break;
        default: {   /* a piece repeated */
          size_t n = 1 + rnd() % 16;
          if (n > head.len - at) n = head.len - at;
          char piece[16];
          memcpy(piece, head.data + at, n);
          buf_append(&head, piece, n);
        }
      }
    }
    /* Parse exactly what the scan calls the head, in a block of its size. */
    struct httphead_scan s = {0};
    httphead_scan(&s, head.data, head.len);
    if (!s.done) {
      buf_free(&head);
      continue;
    }
    char *copy = xmalloc(s.size);
    memcpy(copy, head.data, s.size);
    struct httphead h;
    const char *why = NULL;
    int rc = httphead_parse(&h, copy, s.size, &why);
    CHECK(rc == 0 || rc == 400 || rc == 417 || rc == 431 || rc == 501 ||
              rc == 505, "status %d", rc);
    if (rc == 0) {
      CHECK(h.content_length >= -1 && h.content_length < 1000000000000000000,
            "Content-Length %lld", (long long)h.content_length);
      CHECK(!(h.chunked && h.content_length >= 0), "both framings");
      for (size_t i = 0; i < h.nfields; i++) {
        const struct httphead_field *f = &h.fields[i];
        CHECK(f->name_len > 0 && f->name >= copy &&
                  f->value + f->value_len <= copy + s.size,
              "a field outside the head");
        for (size_t k = 0; k < f->value_len; k++)
          CHECK(f->value[k] == '\t' || (unsigned char)f->value[k] >= 0x20,
                "a control byte in a value");
      }
    } else {
      CHECK(why && *why, "a refusal without a reason");
    }
    free(copy);
    buf_free(&head);
  }
}
