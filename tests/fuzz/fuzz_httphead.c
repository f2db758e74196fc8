/* A libFuzzer target for the request-head parser (src/net/httphead.c),
 * what every byte a client sends to tghost's listeners meets first.
 *
 * For every input it checks:
 *   1. the scan: fed in pieces of every size from 1 to 7 bytes (and the
 *      input's first byte picking a cut pattern), httphead_scan ends the
 *      head at the same byte as when fed whole, and never beyond the end;
 *   2. the parse of exactly the scanned head (in a block of its own size,
 *      so that ASan sees any read past it) accepts or refuses with one of
 *      the statuses of httphead.h and a reason;
 *   3. an accepted head obeys the rules: Content-Length within 18 digits,
 *      not with chunked, no control byte in a value, every field inside
 *      the head; written out again (request line and fields, CRLF) it
 *      parses to the same method, target, version, length, framing and
 *      fields.
 *
 * Built with clang's libFuzzer (cmake --preset fuzz: build-fuzz/
 * fuzz_httphead) and, always, with the plain driver tests/fuzz/
 * fuzz_driver.c that ctest runs over tests/fuzz/corpus/httphead/. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "net/httphead.h"

#define EXPECT(cond, ...)                                  \
  do {                                                     \
    if (!(cond)) {                                         \
      fprintf(stderr, "fuzz_httphead: " __VA_ARGS__);      \
      fputc('\n', stderr);                                 \
      abort();                                             \
    }                                                      \
  } while (0)

static void check_accepted(const struct httphead *h, const char *text,
                           size_t len) {
  EXPECT(h->content_length >= -1 && h->content_length < 1000000000000000000,
         "Content-Length %lld", (long long)h->content_length);
  EXPECT(!(h->chunked && h->content_length >= 0), "two framings");
  EXPECT(h->minor == 0 || h->minor == 1, "HTTP/1.%d", h->minor);
  EXPECT(h->target >= text && h->target + h->target_len <= text + len,
         "the target outside the head");
  for (size_t i = 0; i < h->nfields; i++) {
    const struct httphead_field *f = &h->fields[i];
    EXPECT(f->name_len > 0 && f->name >= text &&
               f->value + f->value_len <= text + len,
           "field %zu outside the head", i);
    for (size_t k = 0; k < f->value_len; k++)
      EXPECT(f->value[k] == '\t' || (unsigned char)f->value[k] >= 0x20,
             "a control byte in field %zu", i);
  }
  /* Written out again, it reads the same. */
  struct buf out = BUF_INIT;
  buf_printf(&out, "%s %.*s HTTP/1.%d\r\n", httphead_method_name(h->method),
             (int)h->target_len, h->target, h->minor);
  for (size_t i = 0; i < h->nfields; i++)
    buf_printf(&out, "%.*s: %.*s\r\n", (int)h->fields[i].name_len,
               h->fields[i].name, (int)h->fields[i].value_len,
               h->fields[i].value);
  buf_append_str(&out, "\r\n");
  struct httphead again;
  const char *why = NULL;
  EXPECT(httphead_parse(&again, out.data, out.len, &why) == 0,
         "rewritten, refused: %s", why);
  EXPECT(again.method == h->method && again.minor == h->minor &&
             again.target_len == h->target_len &&
             memcmp(again.target, h->target, h->target_len) == 0 &&
             again.content_length == h->content_length &&
             again.chunked == h->chunked &&
             again.expect_continue == h->expect_continue &&
             again.keep_alive == h->keep_alive &&
             again.nfields == h->nfields,
         "rewritten, read otherwise");
  for (size_t i = 0; i < h->nfields; i++)
    EXPECT(again.fields[i].value_len == h->fields[i].value_len &&
               memcmp(again.fields[i].value, h->fields[i].value,
                      h->fields[i].value_len) == 0,
           "field %zu rewritten, read otherwise", i);
  buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *text = (const char *)data;
  struct httphead_scan whole = {0};
  size_t used = httphead_scan(&whole, text, size);
  EXPECT(used <= size && (whole.done ? used == whole.size : used == size),
         "the scan used %zu of %zu", used, size);
  for (size_t step = 1; step <= 7; step++) {
    struct httphead_scan s = {0};
    size_t at = 0;
    while (!s.done && at < size) {
      size_t n = step + (size ? (uint8_t)text[0] % step : 0);
      if (n > size - at) n = size - at;
      at += httphead_scan(&s, text + at, n);
    }
    EXPECT(s.done == whole.done && s.size == whole.size,
           "in pieces of %zu the head ends at %zu, whole at %zu", step,
           s.size, whole.size);
  }
  if (!whole.done) return 0;
  char *head = malloc(whole.size);
  memcpy(head, text, whole.size);
  struct httphead h;
  const char *why = NULL;
  int rc = httphead_parse(&h, head, whole.size, &why);
  EXPECT(rc == 0 || rc == 400 || rc == 417 || rc == 431 || rc == 501 ||
             rc == 505, "status %d", rc);
  if (rc) EXPECT(why && *why, "a refusal without a reason");
  else check_accepted(&h, head, whole.size);
  free(head);
  return 0;
}
