#include "base/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool fail(struct json_reader *r, const char *msg) {
  if (!r->error) {
    r->error = msg;
    r->error_offset = (size_t)(r->p - r->start);
  }
  return false;
}

static void skip_ws(struct json_reader *r) {
  while (r->p < r->end) {
    char c = *r->p;
    if (c != ' ' && c != '\n' && c != '\r' && c != '\t') break;
    r->p++;
  }
}

void json_reader_init(struct json_reader *r, const char *s, size_t len) {
  r->start = r->p = s;
  r->end = s + len;
  r->error = NULL;
  r->error_offset = 0;
  r->depth = 0;
}

const char *json_error(const struct json_reader *r) { return r->error; }
size_t json_error_offset(const struct json_reader *r) {
  return r->error_offset;
}

enum json_kind json_peek(struct json_reader *r) {
  if (r->error) return JSON_INVALID;
  skip_ws(r);
  if (r->p >= r->end) {
    fail(r, "unexpected end of input");
    return JSON_INVALID;
  }
  switch (*r->p) {
    case '{': return JSON_OBJECT;
    case '[': return JSON_ARRAY;
    case '"': return JSON_STRING;
    case 't': return JSON_TRUE;
    case 'f': return JSON_FALSE;
    case 'n': return JSON_NULL;
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
      return JSON_NUMBER;
    default:
      fail(r, "unexpected character");
      return JSON_INVALID;
  }
}

static bool open_container(struct json_reader *r, char c) {
  if (r->error) return false;
  skip_ws(r);
  if (r->p >= r->end || *r->p != c)
    return fail(r, c == '{' ? "expected an object" : "expected an array");
  if (r->depth >= JSON_MAX_DEPTH) return fail(r, "nesting too deep");
  r->p++;
  r->first[++r->depth] = 1;
  return true;
}

bool json_object_begin(struct json_reader *r) {
  return open_container(r, '{');
}

bool json_array_begin(struct json_reader *r) { return open_container(r, '['); }

/* Shared by objects and arrays: handles ',' and the closing bracket. */
static bool next_item(struct json_reader *r, char close) {
  if (r->error) return false;
  skip_ws(r);
  if (r->p >= r->end) return fail(r, "unexpected end of input");
  if (*r->p == close) {
    r->p++;
    r->depth--;
    return false;
  }
  if (!r->first[r->depth]) {
    if (*r->p != ',') return fail(r, "expected ',' or closing bracket");
    r->p++;
    skip_ws(r);
  }
  r->first[r->depth] = 0;
  return true;
}

bool json_object_next(struct json_reader *r, struct json_slice *key) {
  if (!next_item(r, '}')) return false;
  if (r->p >= r->end || *r->p != '"') return fail(r, "expected a member name");
  if (!json_read_string(r, key)) return false;
  skip_ws(r);
  if (r->p >= r->end || *r->p != ':') return fail(r, "expected ':'");
  r->p++;
  return true;
}

bool json_array_next(struct json_reader *r) { return next_item(r, ']'); }

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* The bytes of the 8 at p that are '"', '\\' or a control character
 * (below 0x20), as a mask with the high bit of each such byte set: the
 * bit tricks of "determine if a word has a zero byte / a byte less than
 * n". A borrow may also mark a byte above a marked one, never below: the
 * lowest mark is exact. Little-endian: the first byte is the lowest. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define JSON_SWAR 1
#else
#define JSON_SWAR 0
#endif
static inline uint64_t special8(const char *p) {
  const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
  uint64_t v;
  memcpy(&v, p, 8);
  uint64_t quote = v ^ (ones * '"'), backslash = v ^ (ones * '\\');
  return (((quote - ones) & ~quote) | ((backslash - ones) & ~backslash) |
          ((v - ones * 0x20) & ~v)) & highs;
}

bool json_read_string(struct json_reader *r, struct json_slice *out) {
  if (r->error) return false;
  skip_ws(r);
  if (r->p >= r->end || *r->p != '"') return fail(r, "expected a string");
  const char *s = ++r->p;
  bool escapes = false;
  for (;;) {
    /* Fast scan over the common bytes, eight at a time, then one by one
     * up to the byte that stopped it. */
    for (;;) {
      if (!JSON_SWAR || r->end - r->p < 8) {
        while (r->p < r->end && *r->p != '"' && *r->p != '\\' &&
               (unsigned char)*r->p >= 0x20)
          r->p++;
        break;
      }
      uint64_t special = special8(r->p);
      if (special) {
        r->p += __builtin_ctzll(special) >> 3;
        break;
      }
      r->p += 8;
    }
    if (r->p >= r->end) return fail(r, "unterminated string");
    char c = *r->p;
    if (c == '"') break;
    if (c != '\\') return fail(r, "control character in string");
    escapes = true;
    if (r->end - r->p < 2) return fail(r, "unterminated string");
    char e = r->p[1];
    if (e == 'u') {
      if (r->end - r->p < 6) return fail(r, "bad \\u escape");
      for (int i = 2; i < 6; i++)
        if (hexval(r->p[i]) < 0) return fail(r, "bad \\u escape");
      r->p += 6;
    } else if (strchr("\"\\/bfnrt", e) && e) {
      r->p += 2;
    } else {
      return fail(r, "bad escape in string");
    }
  }
  if (out) {
    out->ptr = s;
    out->len = (size_t)(r->p - s);
    out->has_escapes = escapes;
  }
  r->p++;
  return true;
}

static void put_utf8(struct buf *out, uint32_t cp) {
  char b[4];
  size_t n;
  if (cp < 0x80) { b[0] = (char)cp; n = 1; }
  else if (cp < 0x800) {
    b[0] = (char)(0xC0 | (cp >> 6));
    b[1] = (char)(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    b[0] = (char)(0xE0 | (cp >> 12));
    b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    b[2] = (char)(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    b[0] = (char)(0xF0 | (cp >> 18));
    b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    b[3] = (char)(0x80 | (cp & 0x3F));
    n = 4;
  }
  buf_append(out, b, n);
}

static uint32_t hex4(const char *p) {
  return (uint32_t)(hexval(p[0]) << 12 | hexval(p[1]) << 8 |
                    hexval(p[2]) << 4 | hexval(p[3]));
}

/* The slice was validated by json_read_string. */
void json_unescape(const struct json_slice *s, struct buf *out) {
  if (!s->has_escapes) {
    buf_append(out, s->ptr, s->len);
    return;
  }
  const char *p = s->ptr, *end = s->ptr + s->len;
  buf_reserve(out, s->len);
  while (p < end) {
    const char *run = p;
    while (p < end && *p != '\\') p++;
    buf_append(out, run, (size_t)(p - run));
    if (p >= end) break;
    char e = p[1];
    p += 2;
    switch (e) {
      case 'b': buf_append_char(out, '\b'); break;
      case 'f': buf_append_char(out, '\f'); break;
      case 'n': buf_append_char(out, '\n'); break;
      case 'r': buf_append_char(out, '\r'); break;
      case 't': buf_append_char(out, '\t'); break;
      case 'u': {
        uint32_t cp = hex4(p);
        p += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
            uint32_t lo = hex4(p + 2);
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
              p += 6;
            } else {
              cp = 0xFFFD;
            }
          } else {
            cp = 0xFFFD;
          }
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          cp = 0xFFFD;
        }
        put_utf8(out, cp);
        break;
      }
      default: buf_append_char(out, e); break;   /* " \ / */
    }
  }
}

bool json_slice_is(const struct json_slice *s, const char *literal) {
  size_t n = strlen(literal);
  if (!s->has_escapes) return s->len == n && memcmp(s->ptr, literal, n) == 0;
  /* "\u006fk" is "ok" too. Rare (Telegram escapes no names), so decoded
   * into a buffer; an escape is at most 6 bytes per byte it stands for. */
  if (s->len > 6 * n) return false;
  struct buf u = BUF_INIT;
  json_unescape(s, &u);
  bool same = u.len == n && (n == 0 || memcmp(u.data, literal, n) == 0);
  buf_free(&u);
  return same;
}

bool json_read_number(struct json_reader *r, struct json_number *out) {
  if (r->error) return false;
  skip_ws(r);
  const char *s = r->p;
  const char *p = s;
  bool neg = false, integral = true;
  if (p < r->end && *p == '-') { neg = true; p++; }
  if (p >= r->end) return fail(r, "bad number");
  /* The integer part is accumulated as it is scanned: up to 18 digits
   * cannot overflow, and ids and dates are integers. */
  uint64_t acc = 0;
  if (*p == '0') {
    p++;
  } else if (*p >= '1' && *p <= '9') {
    while (p < r->end && *p >= '0' && *p <= '9') acc = acc * 10 + (uint64_t)(*p++ - '0');
  } else {
    return fail(r, "bad number");
  }
  const char *int_end = p;
  if (p < r->end && *p == '.') {
    integral = false;
    p++;
    if (p >= r->end || *p < '0' || *p > '9') return fail(r, "bad number");
    while (p < r->end && *p >= '0' && *p <= '9') p++;
  }
  if (p < r->end && (*p == 'e' || *p == 'E')) {
    integral = false;
    p++;
    if (p < r->end && (*p == '+' || *p == '-')) p++;
    if (p >= r->end || *p < '0' || *p > '9') return fail(r, "bad number");
    while (p < r->end && *p >= '0' && *p <= '9') p++;
  }
  r->p = p;
  if (!out) return true;
  out->is_integer = false;
  /* Up to 18 digits cannot overflow: the common case (ids, dates) needs no
   * check per digit. */
  if (integral && int_end - s - (neg ? 1 : 0) <= 18) {
    int64_t v = (int64_t)acc;
    out->is_integer = true;
    out->i = neg ? -v : v;
    out->d = (double)out->i;
    return true;
  }
  if (integral) {
    /* Accumulate as a negative number so INT64_MIN fits. */
    int64_t v = 0;
    bool overflow = false;
    for (const char *q = s + (neg ? 1 : 0); q < int_end; q++) {
      int digit = *q - '0';
      if (v < (INT64_MIN + digit) / 10) { overflow = true; break; }
      v = v * 10 - digit;
    }
    if (!overflow && (neg || v != INT64_MIN)) {
      out->is_integer = true;
      out->i = neg ? v : -v;
      out->d = (double)out->i;
      return true;
    }
  }
  char small[64];
  size_t len = (size_t)(p - s);
  char *tmp = len < sizeof small ? small : xmalloc(len + 1);
  memcpy(tmp, s, len);
  tmp[len] = '\0';
  out->d = strtod(tmp, NULL);
  if (tmp != small) free(tmp);
  return true;
}

static bool expect_literal(struct json_reader *r, const char *lit) {
  size_t n = strlen(lit);
  if ((size_t)(r->end - r->p) < n || memcmp(r->p, lit, n) != 0)
    return fail(r, "bad literal");
  r->p += n;
  return true;
}

bool json_read_bool(struct json_reader *r, bool *out) {
  enum json_kind k = json_peek(r);
  if (k == JSON_TRUE) { *out = true; return expect_literal(r, "true"); }
  if (k == JSON_FALSE) { *out = false; return expect_literal(r, "false"); }
  return fail(r, "expected a boolean");
}

bool json_read_null(struct json_reader *r) {
  if (json_peek(r) != JSON_NULL) return fail(r, "expected null");
  return expect_literal(r, "null");
}

bool json_skip(struct json_reader *r, struct json_slice *span) {
  enum json_kind k = json_peek(r);
  const char *s = r->p;
  bool ok;
  switch (k) {
    case JSON_NULL: ok = expect_literal(r, "null"); break;
    case JSON_TRUE: ok = expect_literal(r, "true"); break;
    case JSON_FALSE: ok = expect_literal(r, "false"); break;
    case JSON_NUMBER: ok = json_read_number(r, NULL); break;
    case JSON_STRING: ok = json_read_string(r, NULL); break;
    case JSON_ARRAY:
      ok = json_array_begin(r);
      while (ok && json_array_next(r)) ok = json_skip(r, NULL);
      ok = ok && !r->error;
      break;
    case JSON_OBJECT:
      ok = json_object_begin(r);
      while (ok && json_object_next(r, NULL)) ok = json_skip(r, NULL);
      ok = ok && !r->error;
      break;
    default: ok = false; break;
  }
  if (ok && span) {
    span->ptr = s;
    span->len = (size_t)(r->p - s);
    span->has_escapes = false;
  }
  return ok;
}

static bool skip_string_unchecked(struct json_reader *r) {
  for (const char *p = r->p + 1; p < r->end; p++) {
    if (*p == '\\') {
      p++;
    } else if (*p == '"') {
      r->p = p + 1;
      return true;
    }
  }
  return fail(r, "unterminated string");
}

bool json_skip_unchecked(struct json_reader *r, struct json_slice *span) {
  if (r->error) return false;
  skip_ws(r);
  if (r->p >= r->end) return fail(r, "unexpected end of input");
  const char *s = r->p;
  char c = *r->p;
  if (c == '"') {
    if (!skip_string_unchecked(r)) return false;
  } else if (c == '{' || c == '[') {
    long depth = 0;
    for (;;) {
      if (r->p >= r->end) return fail(r, "unexpected end of input");
      c = *r->p;
      if (c == '"') {
        if (!skip_string_unchecked(r)) return false;
        continue;
      }
      r->p++;
      if (c == '{' || c == '[') {
        depth++;
      } else if (c == '}' || c == ']') {
        if (--depth == 0) break;
      }
    }
  } else {
    while (r->p < r->end && *r->p != ',' && *r->p != '}' && *r->p != ']' &&
           *r->p != ' ' && *r->p != '\n' && *r->p != '\r' && *r->p != '\t')
      r->p++;
  }
  if (span) {
    span->ptr = s;
    span->len = (size_t)(r->p - s);
    span->has_escapes = false;
  }
  return true;
}

bool json_finish(struct json_reader *r) {
  if (r->error) return false;
  skip_ws(r);
  if (r->p != r->end) return fail(r, "trailing characters after JSON value");
  return true;
}

bool json_find_member(const char *json, size_t len, const char *name,
                      struct json_reader *at) {
  json_reader_init(at, json, len);
  if (!json_object_begin(at)) return false;
  struct json_slice key;
  while (json_object_next(at, &key)) {
    if (json_slice_is(&key, name)) return true;
    if (!json_skip(at, NULL)) return false;
  }
  return false;
}

bool json_member_repeated(const char *json, size_t len, const char *name) {
  struct json_reader r;
  json_reader_init(&r, json, len);
  if (!json_object_begin(&r)) return false;
  struct json_slice key;
  bool seen = false;
  while (json_object_next(&r, &key)) {
    if (json_slice_is(&key, name)) {
      if (seen) return true;
      seen = true;
    }
    if (!json_skip(&r, NULL)) return false;
  }
  return false;
}

void json_write_string(struct buf *out, const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  buf_reserve(out, len + 2);
  buf_append_char(out, '"');
  const char *run = s, *end = s + len;
  for (const char *p = s; p < end; p++) {
    unsigned char c = (unsigned char)*p;
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    buf_append(out, run, (size_t)(p - run));
    run = p + 1;
    switch (c) {
      case '"': buf_append(out, "\\\"", 2); break;
      case '\\': buf_append(out, "\\\\", 2); break;
      case '\n': buf_append(out, "\\n", 2); break;
      case '\r': buf_append(out, "\\r", 2); break;
      case '\t': buf_append(out, "\\t", 2); break;
      case '\b': buf_append(out, "\\b", 2); break;
      case '\f': buf_append(out, "\\f", 2); break;
      default: {
        char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        buf_append(out, u, 6);
      }
    }
  }
  buf_append(out, run, (size_t)(end - run));
  buf_append_char(out, '"');
}

bool json_write_double(struct buf *out, double d) {
  if (!isfinite(d)) return false;
  char tmp[40];
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(tmp, sizeof tmp, "%.*g", prec, d);
    if (prec == 17 || strtod(tmp, NULL) == d) break;
  }
  buf_append_str(out, tmp);
  /* Keep a float recognisable as one when it reads back ("3" -> "3.0")
   * so a decoded value keeps its Lua subtype. */
  if (!strpbrk(tmp, ".eEn")) buf_append(out, ".0", 2);
  return true;
}
