/* Logging to stderr as text or JSON lines.
 *
 * Every line passes through the redactor: the bot token registered with
 * log_add_secret() is replaced by "<token>" wherever it appears, as it is,
 * with its ':' URL-encoded (%3A or %3a), or only its secret half, so a curl
 * error string or URL can never leak it. */
#ifndef TGHOST_LOG_H
#define TGHOST_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_SILENT };
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

/* Optional context attached to a line. gen = 0 and update_id = -1 mean
 * "not applicable". */
struct log_fields {
  int gen;
  int64_t update_id;
};

void log_set_level(enum log_level level);
void log_set_format(enum log_format format);
int log_parse_level(const char *name, enum log_level *out);
int log_parse_format(const char *name, enum log_format *out);
bool log_enabled(enum log_level level);

void log_add_secret(const char *secret);
void log_clear_secrets(void);
/* Replaces every registered secret in b (in place). */
void log_redact(struct buf *b);
/* Returns a malloc'd, NUL-terminated redacted copy of s. */
char *log_redacted_copy(const char *s, size_t len);

void log_msg(enum log_level level, const struct log_fields *fields,
             const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Trace lines (--trace, and --log-level debug): one per update received
 * and per Bot API call (src/trace.h writes them), level "trace". */
void log_set_trace(bool on);
bool log_trace_enabled(void);
/* A trace line: msg in text logs; in JSON logs "msg" and, when members is
 * given, those members (JSON object members without braces) beside it. */
void log_trace(const struct log_fields *fields, const char *members,
               const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Whoever draws on the terminal between lines (the sandbox's line editor)
 * is told around each line written there by the log (log_line true) and
 * by a script's print(): before, to clear its input line (and dim a log
 * line); after, to draw it again. NULL: nobody (the default). */
struct log_screen {
  void (*before)(void *ud, bool log_line);
  void (*after)(void *ud, bool log_line);
  void *ud;
};
void log_set_screen(const struct log_screen *screen);
void log_screen_before(bool log_line);
void log_screen_after(bool log_line);

#define log_debug(...) log_msg(LOG_DEBUG, NULL, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, NULL, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, NULL, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, NULL, __VA_ARGS__)

#endif
