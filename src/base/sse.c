#include "base/sse.h"

#include <limits.h>
#include <string.h>

static const unsigned char BOM[3] = {0xEF, 0xBB, 0xBF};

void sse_init(struct sse_parser *p, size_t max_event) {
  memset(p, 0, sizeof *p);
  p->retry_ms = -1;
  p->max_event = max_event ? max_event : SSE_DEFAULT_MAX_EVENT;
}

void sse_free(struct sse_parser *p) {
  buf_free(&p->line);
  buf_free(&p->data);
  buf_free(&p->type);
  buf_free(&p->last_id);
  buf_free(&p->text);
}

static void emit_replacement(struct buf *out) {
  buf_append(out, "\xEF\xBF\xBD", 3);
}

void sse_utf8_clean(const char *bytes, size_t len, struct buf *out) {
  const unsigned char *s = (const unsigned char *)bytes;
  size_t i = 0;
  while (i < len) {
    unsigned char b = s[i];
    if (b < 0x80) {
      /* Runs of ASCII go in one append. */
      size_t j = i + 1;
      while (j < len && s[j] < 0x80) j++;
      buf_append(out, s + i, j - i);
      i = j;
      continue;
    }
    size_t need;
    unsigned char lower = 0x80, upper = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
      need = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
      need = 2;
      if (b == 0xE0) lower = 0xA0;
      if (b == 0xED) upper = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      need = 3;
      if (b == 0xF0) lower = 0x90;
      if (b == 0xF4) upper = 0x8F;
    } else {
      emit_replacement(out);
      i++;
      continue;
    }
    /* The maximal subpart: as many bytes as continue the sequence; a
     * byte that does not is read again as the start of the next one. */
    size_t seen = 0;
    while (seen < need && i + 1 + seen < len) {
      unsigned char c = s[i + 1 + seen];
      if (c < lower || c > upper) break;
      lower = 0x80;
      upper = 0xBF;
      seen++;
    }
    if (seen == need) buf_append(out, s + i, need + 1);
    else emit_replacement(out);
    i += 1 + seen;
  }
}

/* Whether the decoded value is ASCII digits only (and not empty). */
static bool all_digits(const char *s, size_t len) {
  if (!len) return false;
  for (size_t i = 0; i < len; i++)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

static bool field_is(const char *name, size_t len, const char *want) {
  return strlen(want) == len && memcmp(name, want, len) == 0;
}

/* Dispatches the event (if it has data) and resets its buffers; returns
 * the callback's wish to go on. */
static bool dispatch(struct sse_parser *p, sse_event_fn fn, void *ud) {
  if (!p->data.len) {
    buf_reset(&p->type);
    return true;
  }
  size_t data_len = p->data.len;
  if (p->data.data[data_len - 1] == '\n') data_len--;
  struct sse_event ev = {
      .type = p->type.len ? p->type.data : "message",
      .type_len = p->type.len ? p->type.len : 7,
      .data = p->data.data,
      .data_len = data_len,
      .id = p->last_id.data ? p->last_id.data : "",
      .id_len = p->last_id.len,
      .retry_ms = p->retry_ms,
  };
  bool go_on = fn(ud, &ev);
  buf_reset(&p->data);
  buf_reset(&p->type);
  return go_on;
}

/* One line, without its end. Returns SSE_OK, SSE_STOPPED (the event it
 * ended was dispatched and the callback said stop) or SSE_TOO_LARGE. */
static enum sse_status process_line(struct sse_parser *p, sse_event_fn fn,
                                    void *ud) {
  if (!p->line.len) return dispatch(p, fn, ud) ? SSE_OK : SSE_STOPPED;
  if (p->line.data[0] == ':') return SSE_OK;   /* a comment */
  buf_reset(&p->text);
  sse_utf8_clean(p->line.data, p->line.len, &p->text);
  const char *t = p->text.data;
  size_t len = p->text.len;
  const char *colon = memchr(t, ':', len);
  size_t name_len = colon ? (size_t)(colon - t) : len;
  const char *value = colon ? colon + 1 : t + len;
  size_t value_len = (size_t)(t + len - value);
  if (value_len && *value == ' ') {
    value++;
    value_len--;
  }
  if (field_is(t, name_len, "event")) {
    buf_reset(&p->type);
    buf_append(&p->type, value, value_len);
  } else if (field_is(t, name_len, "data")) {
    if (p->data.len + value_len + 1 > p->max_event) return SSE_TOO_LARGE;
    buf_append(&p->data, value, value_len);
    buf_append_char(&p->data, '\n');
  } else if (field_is(t, name_len, "id")) {
    if (!memchr(value, '\0', value_len)) {
      buf_reset(&p->last_id);
      buf_append(&p->last_id, value, value_len);
    }
  } else if (field_is(t, name_len, "retry")) {
    if (all_digits(value, value_len)) {
      long ms = 0;
      for (size_t i = 0; i < value_len; i++) {
        int d = value[i] - '0';
        ms = ms > (LONG_MAX - d) / 10 ? LONG_MAX : ms * 10 + d;
      }
      p->retry_ms = ms;
    }
  }
  /* Any other field is ignored, as the standard says. */
  return SSE_OK;
}

enum sse_status sse_feed(struct sse_parser *p, const char *bytes, size_t len,
                         size_t *used, sse_event_fn fn, void *ud) {
  const unsigned char *s = (const unsigned char *)bytes;
  size_t i = 0;
  enum sse_status st = SSE_OK;
  if (p->failed) {
    st = SSE_TOO_LARGE;
    goto out;
  }
  /* The BOM check, across feeds: bytes that turn out not to be one are
   * the start of the first line. */
  while (!p->started && i < len) {
    if (s[i] == BOM[p->bom_seen]) {
      i++;
      if (++p->bom_seen == 3) p->started = true;
      continue;
    }
    p->started = true;
    buf_append(&p->line, BOM, p->bom_seen);
  }
  while (i < len) {
    unsigned char c = s[i];
    if (p->after_cr) {
      p->after_cr = false;
      if (c == '\n') {
        i++;
        continue;
      }
    }
    if (c == '\r' || c == '\n') {
      i++;
      p->after_cr = c == '\r';
      st = process_line(p, fn, ud);
      buf_reset(&p->line);
      if (st != SSE_OK) break;
      continue;
    }
    /* The rest of the line up to the next CR or LF, in one append. */
    size_t j = i;
    while (j < len && s[j] != '\r' && s[j] != '\n') j++;
    if (p->line.len + (j - i) > p->max_event) {
      st = SSE_TOO_LARGE;
      break;
    }
    buf_append(&p->line, s + i, j - i);
    i = j;
  }
  if (st == SSE_TOO_LARGE) p->failed = true;
out:
  if (used) *used = i;
  return st;
}

void sse_finish(struct sse_parser *p) {
  buf_reset(&p->line);
  buf_reset(&p->data);
  buf_reset(&p->type);
  p->after_cr = false;
  p->started = false;
  p->bom_seen = 0;
  p->failed = false;
}
