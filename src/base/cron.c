#include "base/cron.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#define SEARCH_YEARS 30

struct field {
  const char *what;
  int min, max;
  const char *const *names;   /* for min, min + 1, ...; or NULL */
};

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may",
                                          "jun", "jul", "aug", "sep", "oct",
                                          "nov", "dec", NULL};
static const char *const wday_names[] = {"sun", "mon", "tue", "wed", "thu",
                                         "fri", "sat", NULL};

static const struct field fields[5] = {
    {"minute", 0, 59, NULL},
    {"hour", 0, 23, NULL},
    {"day of month", 1, 31, NULL},
    {"month", 1, 12, month_names},
    {"day of week", 0, 7, wday_names},
};

/* A number or a name at *p; false with err set. */
static bool parse_value(const char **p, const struct field *f, int *out,
                        struct buf *err) {
  const char *s = *p;
  if (isdigit((unsigned char)*s)) {
    long v = 0;
    while (isdigit((unsigned char)*s)) {
      v = v * 10 + (*s++ - '0');
      if (v > 1000) break;
    }
    if (v < f->min || v > f->max) {
      buf_printf(err, "%s %ld is out of range %d-%d", f->what, v, f->min,
                 f->max);
      return false;
    }
    *out = (int)v;
    *p = s;
    return true;
  }
  if (f->names && isalpha((unsigned char)*s)) {
    for (int i = 0; f->names[i]; i++) {
      if (strncasecmp(s, f->names[i], 3) == 0 &&
          !isalpha((unsigned char)s[3])) {
        *out = f->min + i;
        *p = s + 3;
        return true;
      }
    }
  }
  size_t n = strcspn(s, ",-/ \t");
  buf_printf(err, "\"%.*s\" is not a %s", (int)n, s, f->what);
  return false;
}

/* One field's text (up to the next blank) into bits; *star tells whether
 * it starts with "*". */
static bool parse_field(const char **p, const struct field *f, uint64_t *bits,
                        bool *star, struct buf *err) {
  const char *s = *p;
  *bits = 0;
  *star = *s == '*';
  for (;;) {
    int lo, hi, step = 1;
    if (*s == '*') {
      s++;
      lo = f->min;
      hi = f->max;
      if (f->min == 0 && f->max == 7) hi = 6;   /* 7 is 0 again */
    } else {
      if (!parse_value(&s, f, &lo, err)) return false;
      hi = lo;
      if (*s == '-') {
        s++;
        if (!parse_value(&s, f, &hi, err)) return false;
        if (hi < lo) {
          buf_printf(err, "%s range %d-%d goes backwards", f->what, lo, hi);
          return false;
        }
      } else if (*s == '/') {
        hi = f->max;   /* "a/n": from a to the end */
      }
    }
    if (*s == '/') {
      s++;
      if (!isdigit((unsigned char)*s)) {
        buf_printf(err, "%s: a step after / must be a number", f->what);
        return false;
      }
      long v = 0;
      while (isdigit((unsigned char)*s) && v <= 1000) v = v * 10 + (*s++ - '0');
      if (v < 1 || v > f->max) {
        buf_printf(err, "%s step %ld is out of range 1-%d", f->what, v,
                   f->max);
        return false;
      }
      step = (int)v;
    }
    for (int v = lo; v <= hi; v += step)
      *bits |= (uint64_t)1 << (f->max == 7 && v == 7 ? 0 : v);
    if (*s == ',') {
      s++;
      continue;
    }
    if (*s && *s != ' ' && *s != '\t') {
      buf_printf(err, "%s: unexpected \"%c\"", f->what, *s);
      return false;
    }
    break;
  }
  *p = s;
  return true;
}

static const struct {
  const char *name, *expansion;
} macros[] = {
    {"@yearly", "0 0 1 1 *"},   {"@annually", "0 0 1 1 *"},
    {"@monthly", "0 0 1 * *"},  {"@weekly", "0 0 * * 0"},
    {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

int cron_parse(const char *text, struct cron_expr *out, struct buf *err) {
  memset(out, 0, sizeof *out);
  const char *s = text;
  while (*s == ' ' || *s == '\t') s++;
  if (*s == '@') {
    size_t n = strcspn(s, " \t");
    const char *rest = s + n;
    while (*rest == ' ' || *rest == '\t') rest++;
    for (size_t i = 0; i < sizeof macros / sizeof *macros; i++)
      if (strlen(macros[i].name) == n && strncasecmp(s, macros[i].name, n) == 0 &&
          !*rest)
        return cron_parse(macros[i].expansion, out, err);
    buf_printf(err, "unknown macro %.*s (known: @yearly, @annually, @monthly, "
               "@weekly, @daily, @midnight, @hourly)", (int)n, s);
    return -1;
  }
  uint64_t bits[5];
  bool star[5];
  for (int i = 0; i < 5; i++) {
    while (*s == ' ' || *s == '\t') s++;
    if (!*s) {
      buf_printf(err, "expected 5 fields (minute hour day-of-month month "
                 "day-of-week), got %d", i);
      return -1;
    }
    if (!parse_field(&s, &fields[i], &bits[i], &star[i], err)) return -1;
  }
  while (*s == ' ' || *s == '\t') s++;
  if (*s) {
    buf_append_str(err, "expected 5 fields (minute hour day-of-month month "
                        "day-of-week), got more");
    return -1;
  }
  out->minutes = bits[0];
  out->hours = (uint32_t)bits[1];
  out->mdays = (uint32_t)bits[2];
  out->months = (uint16_t)bits[3];
  out->wdays = (uint8_t)bits[4];
  out->mday_star = star[2];
  out->wday_star = star[4];
  if (cron_next(out, tz_utc(), 0) < 0) {
    buf_append_str(err, "it never fires (no month has that day)");
    return -1;
  }
  return 0;
}

static bool day_matches(const struct cron_expr *e, const struct tz_civil *c) {
  bool mday = e->mdays >> c->day & 1, wday = e->wdays >> c->wday & 1;
  if (e->mday_star || e->wday_star) return mday && wday;
  return mday || wday;
}

/* The lowest set bit at or above from, or -1. */
static int next_bit(uint64_t bits, int from, int limit) {
  for (int i = from; i <= limit; i++)
    if (bits >> i & 1) return i;
  return -1;
}

int64_t cron_next(const struct cron_expr *e, const struct tz_zone *z,
                  int64_t after) {
  /* The first whole minute after every local time shown so far. */
  int64_t reached = tz_local_reached(z, after);
  int64_t local = (reached >= 0 ? reached / 60 : (reached - 59) / 60) * 60 + 60;
  struct tz_civil c;
  tz_civil(local, &c);
  int64_t last_year = c.year + SEARCH_YEARS;
  for (;;) {
    tz_civil(local, &c);
    if (c.year > last_year) return -1;
    if (!(e->months >> c.month & 1)) {
      struct tz_civil n = {c.year, c.month + 1, 1, 0, 0, 0, 0, 0};
      local = tz_seconds(&n);
      continue;
    }
    if (!day_matches(e, &c)) {
      struct tz_civil n = {c.year, c.month, c.day + 1, 0, 0, 0, 0, 0};
      local = tz_seconds(&n);
      continue;
    }
    int h = next_bit(e->hours, c.hour, 23);
    if (h < 0) {
      struct tz_civil n = {c.year, c.month, c.day + 1, 0, 0, 0, 0, 0};
      local = tz_seconds(&n);
      continue;
    }
    if (h != c.hour) {
      struct tz_civil n = {c.year, c.month, c.day, h, 0, 0, 0, 0};
      local = tz_seconds(&n);
      continue;
    }
    int m = next_bit(e->minutes, c.min, 59);
    if (m < 0) {
      struct tz_civil n = {c.year, c.month, c.day, c.hour + 1, 0, 0, 0, 0};
      local = tz_seconds(&n);
      continue;
    }
    struct tz_civil n = {c.year, c.month, c.day, c.hour, m, 0, 0, 0};
    return tz_instant(z, tz_seconds(&n));
  }
}
