/* What the fake Bot API received, asked from an end-to-end test
 * (calls.h). */
#include "calls.h"

#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "base/json.h"

char *reply_starting_from(size_t from, const char *prefix) {
  struct fakeapi *api = harness_api();
  for (size_t i = from; i < fakeapi_call_count(api); i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "sendMessage") != 0) continue;
    char *t = fake_call_string(c, "text");
    if (t && strncmp(t, prefix, strlen(prefix)) == 0) return t;
    free(t);
  }
  return NULL;
}

char *reply_starting(const char *prefix) {
  return reply_starting_from(0, prefix);
}

/* How many sendMessage calls had a text that text_ok accepts. */
static size_t count_sent(bool (*text_ok)(const char *t, const char *arg),
                         const char *arg) {
  struct fakeapi *api = harness_api();
  size_t n = 0;
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "sendMessage") != 0) continue;
    char *t = fake_call_string(c, "text");
    if (t && text_ok(t, arg)) n++;
    free(t);
  }
  return n;
}

static bool same(const char *t, const char *text) {
  return strcmp(t, text) == 0;
}

static bool starts(const char *t, const char *prefix) {
  return strncmp(t, prefix, strlen(prefix)) == 0;
}

size_t sent_with(const char *text) { return count_sent(same, text); }

size_t sent_starting(const char *prefix) {
  return count_sent(starts, prefix);
}

size_t replies_with(const char *text) {
  struct fakeapi *api = harness_api();
  size_t n = 0;
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    char *t = fake_call_string(fakeapi_call(api, i), "text");
    if (t && strcmp(t, text) == 0) n++;
    free(t);
  }
  return n;
}

const struct fake_call *nth_call(const char *method, size_t nth) {
  struct fakeapi *api = harness_api();
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, method) == 0 && nth-- == 0) return c;
  }
  return NULL;
}

void check_each_answered_once(int n, const char *prefix) {
  struct fakeapi *api = harness_api();
  unsigned char *seen = xcalloc((size_t)n, 1);
  size_t plen = strlen(prefix);
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "sendMessage") != 0) continue;
    char *t = fake_call_string(c, "text");
    if (!t || strncmp(t, prefix, plen) != 0) {
      free(t);
      continue;
    }
    int u = atoi(t + plen);
    CHECK(u >= 0 && u < n, "reply for unknown update %s", t);
    CHECK(!seen[u], "update %d was handled twice", u);
    seen[u] = 1;
    free(t);
  }
  for (int u = 0; u < n; u++) CHECK(seen[u], "update %d was never handled", u);
  free(seen);
}

static bool have_poll(void *ud) {
  return fakeapi_poll_count(harness_api()) >= *(size_t *)ud;
}

void wait_polling(void) {
  size_t one = 1;
  CHECK(run_until(have_poll, &one, 15000), "tghost never polled");
}

/* --- JSON compared by value: objects with sorted keys ------------------- */

struct member {
  char *key;
  char *value;
};

static int member_cmp(const void *a, const void *b) {
  return strcmp(((const struct member *)a)->key, ((const struct member *)b)->key);
}

/* Appends the canonical text of the next value of r (object keys sorted,
 * no white space, strings re-escaped); false on malformed JSON. */
static bool canon_value(struct json_reader *r, struct buf *out) {
  switch (json_peek(r)) {
    case JSON_OBJECT: {
      struct member *m = NULL;
      size_t n = 0, cap = 0;
      struct json_slice key;
      bool ok = json_object_begin(r);
      while (ok && json_object_next(r, &key)) {
        if (n == cap) {
          cap = cap ? cap * 2 : 8;
          m = xrealloc(m, cap * sizeof *m);
        }
        struct buf k = BUF_INIT, v = BUF_INIT;
        json_unescape(&key, &k);
        ok = canon_value(r, &v);
        m[n].key = buf_steal(&k, NULL);
        m[n].value = buf_steal(&v, NULL);
        n++;
      }
      ok = ok && !json_error(r);
      qsort(m, n, sizeof *m, member_cmp);
      buf_append_char(out, '{');
      for (size_t i = 0; i < n; i++) {
        if (i) buf_append_char(out, ',');
        json_write_string(out, m[i].key, strlen(m[i].key));
        buf_append_char(out, ':');
        buf_append_str(out, m[i].value ? m[i].value : "");
        free(m[i].key);
        free(m[i].value);
      }
      buf_append_char(out, '}');
      free(m);
      return ok;
    }
    case JSON_ARRAY: {
      bool ok = json_array_begin(r);
      bool first = true;
      buf_append_char(out, '[');
      while (ok && json_array_next(r)) {
        if (!first) buf_append_char(out, ',');
        first = false;
        ok = canon_value(r, out);
      }
      buf_append_char(out, ']');
      return ok && !json_error(r);
    }
    case JSON_STRING: {
      struct json_slice s;
      if (!json_read_string(r, &s)) return false;
      struct buf u = BUF_INIT;
      json_unescape(&s, &u);
      json_write_string(out, u.data ? u.data : "", u.len);
      buf_free(&u);
      return true;
    }
    case JSON_NULL:
    case JSON_TRUE:
    case JSON_FALSE:
    case JSON_NUMBER: {
      struct json_slice span;
      if (!json_skip(r, &span)) return false;
      buf_append(out, span.ptr, span.len);
      return true;
    }
    default:
      return false;
  }
}

char *canonical_json(const char *json) {
  struct json_reader r;
  struct buf out = BUF_INIT;
  json_reader_init(&r, json, strlen(json));
  if (!canon_value(&r, &out) || !json_finish(&r)) {
    buf_free(&out);
    return NULL;
  }
  return buf_steal(&out, NULL);
}

size_t handler_calls(void) {
  struct fakeapi *api = harness_api();
  return fakeapi_call_count(api) - fakeapi_count_method(api, "getMe");
}

bool have_handler_calls(void *ud) {
  return handler_calls() >= ((struct count_wait *)ud)->want;
}

void check_calls(const struct expected_call *want, size_t n) {
  struct fakeapi *api = harness_api();
  size_t got = 0;
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "getMe") == 0) continue;
    CHECK(got < n, "unexpected extra call %s %s", c->method, c->params);
    char *have = canonical_json(c->params);
    char *expect = canonical_json(want[got].params);
    CHECK(expect, "expected params of call %zu are not JSON: %s", got,
          want[got].params);
    CHECK(strcmp(c->method, want[got].method) == 0 && have &&
              strcmp(have, expect) == 0,
          "call %zu:\n    got:  %s %s\n    want: %s %s", got, c->method,
          have ? have : c->params, want[got].method, expect);
    free(have);
    free(expect);
    got++;
  }
  CHECK(got == n, "%zu calls arrived, %zu expected", got, n);
}
