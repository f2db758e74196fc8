#include "net/httphead.h"

#include <string.h>
#include <strings.h>

size_t httphead_scan(struct httphead_scan *s, const char *piece, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char c = piece[i];
    s->size++;
    if (c == '\n') {
      if (s->line_len == 0 || (s->line_len == 1 && s->line_cr)) {
        s->done = true;
        return i + 1;
      }
      s->line_len = 0;
      s->line_cr = false;
      continue;
    }
    s->line_len++;
    s->line_cr = s->line_len == 1 && c == '\r';
  }
  return n;
}

/* RFC 9110's tchar. */
static bool token_char(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* What a field value may hold: tab, space, visible ASCII and bytes >= 0x80
 * (obs-text); no other control character. */
static bool value_char(unsigned char c) {
  return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool same_token(const char *s, size_t len, const char *name) {
  return strlen(name) == len && strncasecmp(s, name, len) == 0;
}

/* Whether the comma-separated list s[0..len) holds token (any case). */
static bool list_has(const char *s, size_t len, const char *token) {
  size_t i = 0;
  while (i < len) {
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == ',')) i++;
    size_t start = i;
    while (i < len && s[i] != ',') i++;
    size_t end = i;
    while (end > start && (s[end - 1] == ' ' || s[end - 1] == '\t')) end--;
    if (end > start && same_token(s + start, end - start, token)) return true;
  }
  return false;
}

struct method_name {
  const char *name;
  enum httphead_method method;
};

static const struct method_name methods[] = {
    {"GET", HTTPHEAD_GET},         {"HEAD", HTTPHEAD_HEAD},
    {"POST", HTTPHEAD_POST},       {"PUT", HTTPHEAD_PUT},
    {"DELETE", HTTPHEAD_DELETE},   {"OPTIONS", HTTPHEAD_OPTIONS},
    {"PATCH", HTTPHEAD_PATCH},
};

const char *httphead_method_name(enum httphead_method m) {
  for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
    if (methods[i].method == m) return methods[i].name;
  return "?";
}

/* The next line of text[*at..len): its start and length without the line
 * end; false when no line end is left. */
static bool next_line(const char *text, size_t len, size_t *at,
                      const char **line, size_t *line_len) {
  const char *start = text + *at;
  const char *nl = memchr(start, '\n', len - *at);
  if (!nl) return false;
  size_t n = (size_t)(nl - start);
  *at += n + 1;
  if (n && start[n - 1] == '\r') n--;
  *line = start;
  *line_len = n;
  return true;
}

static int parse_request_line(struct httphead *h, const char *line,
                              size_t len, const char **why) {
  const char *sp1 = memchr(line, ' ', len);
  if (!sp1 || sp1 == line) {
    *why = "a malformed request line";
    return 400;
  }
  size_t mlen = (size_t)(sp1 - line);
  for (size_t i = 0; i < mlen; i++)
    if (!token_char((unsigned char)line[i])) {
      *why = "a malformed method";
      return 400;
    }
  const char *target = sp1 + 1;
  const char *end = line + len;
  const char *sp2 = memchr(target, ' ', (size_t)(end - target));
  if (!sp2 || sp2 == target) {
    *why = "a malformed request line";
    return 400;
  }
  for (const char *p = target; p < sp2; p++)
    if ((unsigned char)*p <= 0x20 || (unsigned char)*p == 0x7f) {
      *why = "a control character in the request target";
      return 400;
    }
  const char *version = sp2 + 1;
  size_t vlen = (size_t)(end - version);
  if (vlen == 8 && memcmp(version, "HTTP/1.", 7) == 0 &&
      (version[7] == '0' || version[7] == '1')) {
    h->minor = version[7] - '0';
  } else if (vlen >= 5 && memcmp(version, "HTTP/", 5) == 0 &&
             memchr(version, ' ', vlen) == NULL) {
    *why = "only HTTP/1.0 and HTTP/1.1 are spoken here";
    return 505;
  } else {
    *why = "a malformed request line";
    return 400;
  }
  bool known = false;
  for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
    if (strlen(methods[i].name) == mlen &&
        memcmp(methods[i].name, line, mlen) == 0) {
      h->method = methods[i].method;
      known = true;
    }
  if (!known) {
    *why = "a method this server does not implement";
    return 501;
  }
  h->target = target;
  h->target_len = (size_t)(sp2 - target);
  return 0;
}

/* Content-Length: 1 to HTTPHEAD_MAX_LENGTH_DIGITS digits, nothing else. */
static bool read_length(const char *v, size_t len, int64_t *out) {
  if (len == 0 || len > HTTPHEAD_MAX_LENGTH_DIGITS) return false;
  int64_t n = 0;
  for (size_t i = 0; i < len; i++) {
    if (v[i] < '0' || v[i] > '9') return false;
    n = n * 10 + (v[i] - '0');
  }
  *out = n;
  return true;
}

static int check_framing(struct httphead *h, const char **why) {
  size_t lengths = 0, encodings = 0;
  bool close = false, keep = false;
  for (size_t i = 0; i < h->nfields; i++) {
    const struct httphead_field *f = &h->fields[i];
    if (same_token(f->name, f->name_len, "Content-Length")) {
      int64_t n;
      if (!read_length(f->value, f->value_len, &n)) {
        *why = "Content-Length is not a number of at most 18 digits";
        return 400;
      }
      if (lengths++ && n != h->content_length) {
        *why = "two different Content-Length headers";
        return 400;
      }
      h->content_length = n;
    } else if (same_token(f->name, f->name_len, "Transfer-Encoding")) {
      encodings++;
      if (!same_token(f->value, f->value_len, "chunked") || encodings > 1) {
        *why = "a Transfer-Encoding other than one 'chunked'";
        return 501;
      }
      h->chunked = true;
    } else if (same_token(f->name, f->name_len, "Expect")) {
      if (!same_token(f->value, f->value_len, "100-continue")) {
        *why = "an expectation other than 100-continue";
        return 417;
      }
      h->expect_continue = true;
    } else if (same_token(f->name, f->name_len, "Connection")) {
      close = close || list_has(f->value, f->value_len, "close");
      keep = keep || list_has(f->value, f->value_len, "keep-alive");
    }
  }
  if (lengths && h->chunked) {
    *why = "both Content-Length and Transfer-Encoding";
    return 400;
  }
  if (h->method == HTTPHEAD_HEAD && (h->chunked || h->content_length > 0)) {
    *why = "a HEAD request with a body";
    return 400;
  }
  h->keep_alive = !close && (h->minor >= 1 || keep);
  return 0;
}

int httphead_parse(struct httphead *h, const char *text, size_t len,
                   const char **why) {
  memset(h, 0, sizeof *h);
  h->content_length = -1;
  size_t at = 0;
  const char *line;
  size_t line_len;
  if (!next_line(text, len, &at, &line, &line_len) || line_len == 0) {
    *why = "no request line";
    return 400;
  }
  for (size_t i = 0; i < line_len; i++)
    if (!value_char((unsigned char)line[i]) || line[i] == '\t') {
      *why = "a control character in the request line";
      return 400;
    }
  int rc = parse_request_line(h, line, line_len, why);
  if (rc) return rc;
  for (;;) {
    if (!next_line(text, len, &at, &line, &line_len)) {
      *why = "the head does not end with an empty line";
      return 400;
    }
    if (line_len == 0) break;
    if (line[0] == ' ' || line[0] == '\t') {
      *why = "a folded header line";
      return 400;
    }
    const char *colon = memchr(line, ':', line_len);
    if (!colon || colon == line) {
      *why = "a header line without a name";
      return 400;
    }
    for (const char *p = line; p < colon; p++)
      if (!token_char((unsigned char)*p)) {
        *why = "a malformed header name";
        return 400;
      }
    const char *v = colon + 1, *end = line + line_len;
    for (const char *p = v; p < end; p++)
      if (!value_char((unsigned char)*p)) {
        *why = "a control character in a header";
        return 400;
      }
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t')) end--;
    if (h->nfields == HTTPHEAD_MAX_FIELDS) {
      *why = "too many header lines";
      return 431;
    }
    struct httphead_field *f = &h->fields[h->nfields++];
    f->name = line;
    f->name_len = (size_t)(colon - line);
    f->value = v;
    f->value_len = (size_t)(end - v);
  }
  if (at != len) {
    *why = "bytes after the head's end";
    return 400;
  }
  return check_framing(h, why);
}

const char *httphead_field(const struct httphead *h, const char *name,
                           size_t *len) {
  for (size_t i = 0; i < h->nfields; i++) {
    const struct httphead_field *f = &h->fields[i];
    if (same_token(f->name, f->name_len, name)) {
      if (len) *len = f->value_len;
      return f->value;
    }
  }
  return NULL;
}
