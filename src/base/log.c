#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/json.h"

#define MAX_SECRETS 8
/* The secret half of a token is redacted alone only when it is this long
 * (shorter strings would blank out ordinary text). */
#define MIN_SECRET_PART 16

static enum log_level current_level = LOG_INFO;
static enum log_format current_format = LOG_FORMAT_TEXT;
static bool trace_on;
static char *secrets[MAX_SECRETS];
static int nsecrets;

static const char *const level_names[] = {"debug", "info", "warn", "error",
                                          "silent"};

void log_set_level(enum log_level level) { current_level = level; }
void log_set_format(enum log_format format) { current_format = format; }
void log_set_trace(bool on) { trace_on = on; }
bool log_trace_enabled(void) { return trace_on || current_level == LOG_DEBUG; }
bool log_enabled(enum log_level level) { return level >= current_level; }

int log_parse_level(const char *name, enum log_level *out) {
  for (int i = 0; i <= LOG_SILENT; i++) {
    if (strcasecmp(name, level_names[i]) == 0) {
      *out = (enum log_level)i;
      return 0;
    }
  }
  if (strcasecmp(name, "warning") == 0) {
    *out = LOG_WARN;
    return 0;
  }
  return -1;
}

int log_parse_format(const char *name, enum log_format *out) {
  if (strcmp(name, "text") == 0) *out = LOG_FORMAT_TEXT;
  else if (strcmp(name, "json") == 0) *out = LOG_FORMAT_JSON;
  else return -1;
  return 0;
}

static void add_one_secret(const char *s) {
  if (!s || !*s || nsecrets == MAX_SECRETS) return;
  for (int i = 0; i < nsecrets; i++)
    if (strcmp(secrets[i], s) == 0) return;
  secrets[nsecrets++] = xstrdup(s);
}

static void add_encoded(const char *secret, const char *colon) {
  struct buf enc = BUF_INIT;
  for (const char *p = secret; *p; p++) {
    if (*p == ':') buf_append_str(&enc, colon);
    else buf_append_char(&enc, *p);
  }
  add_one_secret(enc.data);
  buf_free(&enc);
}

void log_add_secret(const char *secret) {
  add_one_secret(secret);
  const char *colon = secret ? strchr(secret, ':') : NULL;
  if (!colon) return;
  /* A token in a URL may have its ':' percent-encoded, in either case;
   * and its secret half identifies the bot on its own. */
  add_encoded(secret, "%3A");
  add_encoded(secret, "%3a");
  if (strlen(colon + 1) >= MIN_SECRET_PART) add_one_secret(colon + 1);
}

void log_clear_secrets(void) {
  for (int i = 0; i < nsecrets; i++) free(secrets[i]);
  nsecrets = 0;
}

void log_redact(struct buf *b) {
  for (int i = 0; i < nsecrets; i++) {
    size_t slen = strlen(secrets[i]);
    if (!b->data || b->len < slen) continue;
    if (!memmem(b->data, b->len, secrets[i], slen)) continue;
    struct buf out = BUF_INIT;
    const char *p = b->data, *end = b->data + b->len;
    while (p < end) {
      const char *hit = memmem(p, (size_t)(end - p), secrets[i], slen);
      if (!hit) {
        buf_append(&out, p, (size_t)(end - p));
        break;
      }
      buf_append(&out, p, (size_t)(hit - p));
      buf_append_str(&out, "<token>");
      p = hit + slen;
    }
    if (!out.data) buf_reserve(&out, 0);
    buf_free(b);
    *b = out;
  }
}

char *log_redacted_copy(const char *s, size_t len) {
  struct buf b = BUF_INIT;
  buf_append(&b, s, len);
  log_redact(&b);
  return buf_steal(&b, NULL);
}

static void format_time(char *out, size_t n) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  size_t len = strftime(out, n, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out + len, n - len, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* One line on stderr: tag is the text form's level ("INFO "), name the JSON
 * one; members are extra JSON members (or NULL). */
static void emit(const char *tag, const char *name,
                 const struct log_fields *fields, struct buf *msg,
                 struct buf *members) {
  if (!msg->data) buf_reserve(msg, 0);
  /* Redact before formatting, so JSON escaping cannot split a secret. */
  log_redact(msg);
  if (members) log_redact(members);

  char when[40];
  format_time(when, sizeof when);
  struct buf line = BUF_INIT;
  if (current_format == LOG_FORMAT_JSON) {
    buf_printf(&line, "{\"time\":\"%s\",\"level\":\"%s\"", when, name);
    if (fields && fields->gen > 0) buf_printf(&line, ",\"gen\":%d", fields->gen);
    if (fields && fields->update_id >= 0)
      buf_printf(&line, ",\"update_id\":%lld", (long long)fields->update_id);
    if (members && members->len) {
      buf_append_char(&line, ',');
      buf_append(&line, members->data, members->len);
    }
    buf_append_str(&line, ",\"msg\":");
    json_write_string(&line, msg->data, msg->len);
    buf_append_str(&line, "}\n");
  } else {
    buf_printf(&line, "%s %s ", when, tag);
    if (fields && fields->gen > 0) buf_printf(&line, "[gen %d] ", fields->gen);
    if (fields && fields->update_id >= 0)
      buf_printf(&line, "[update %lld] ", (long long)fields->update_id);
    buf_append(&line, msg->data, msg->len);
    buf_append_char(&line, '\n');
  }
  log_screen_before(true);
  fwrite(line.data, 1, line.len, stderr);
  fflush(stderr);
  log_screen_after(true);
  buf_free(&line);
}

static struct log_screen screen;

void log_set_screen(const struct log_screen *s) {
  if (s) screen = *s;
  else memset(&screen, 0, sizeof screen);
}

void log_screen_before(bool log_line) {
  if (screen.before) screen.before(screen.ud, log_line);
}

void log_screen_after(bool log_line) {
  if (screen.after) screen.after(screen.ud, log_line);
}

void log_msg(enum log_level level, const struct log_fields *fields,
             const char *fmt, ...) {
  if (!log_enabled(level) || level == LOG_SILENT) return;
  struct buf msg = BUF_INIT;
  va_list ap;
  va_start(ap, fmt);
  buf_vprintf(&msg, fmt, ap);
  va_end(ap);
  static const char *const tags[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
  emit(tags[level], level_names[level], fields, &msg, NULL);
  buf_free(&msg);
}

void log_trace(const struct log_fields *fields, const char *members,
               const char *fmt, ...) {
  if (!log_trace_enabled()) return;
  struct buf msg = BUF_INIT, extra = BUF_INIT;
  va_list ap;
  va_start(ap, fmt);
  buf_vprintf(&msg, fmt, ap);
  va_end(ap);
  if (members) buf_append_str(&extra, members);
  emit("TRACE", "trace", fields, &msg, &extra);
  buf_free(&msg);
  buf_free(&extra);
}
