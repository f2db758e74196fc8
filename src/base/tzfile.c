#include "base/tzfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* RFC 8536 bounds UTC offsets to under 26 hours either way: every
 * instant with a given local time lies within this of it. */
#define MAX_OFFSET (26 * 3600)
#define WINDOW (MAX_OFFSET + 3600)
#define MAX_FILE (1 << 20)
#define MAX_SEGMENTS 32

/* A rule's day: Jn (1-365, February 29 never counted), n (0-365), or
 * Mm.w.d (day d of week w of month m, week 5 the last). */
struct rule_day {
  enum { DAY_JULIAN1, DAY_JULIAN0, DAY_MONTH } kind;
  int n, month, week, wday;
  int32_t time;                  /* seconds after local midnight */
};

/* A POSIX TZ rule: standard time, and daylight time between start and
 * end each year when has_dst. */
struct tz_rule {
  int32_t std_off, dst_off;      /* seconds east of UTC */
  bool has_dst;
  struct rule_day start, end;
};

struct tz_zone {
  char *name;
  size_t ntrans;
  int64_t *trans;                /* instants, ascending */
  int32_t *trans_off;            /* the offset from each on */
  int32_t first_off;             /* before the first transition */
  bool has_rule;                 /* after the last one: the rule */
  struct tz_rule rule;
  bool builtin;
};

/* A stretch of time from start on, with one offset. */
struct segment {
  int64_t start;
  int32_t off;
};

static struct tz_zone utc_zone = {.name = "UTC", .builtin = true};

const struct tz_zone *tz_utc(void) { return &utc_zone; }

const char *tz_name(const struct tz_zone *z) { return z->name; }

void tz_free(struct tz_zone *z) {
  if (!z || z->builtin) return;
  free(z->name);
  free(z->trans);
  free(z->trans_off);
  free(z);
}

/* --- the calendar ------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static bool is_leap(int64_t y) {
  return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

int tz_month_days(int64_t year, int month) {
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month == 2 && is_leap(year)) return 29;
  return days[month - 1];
}

/* Days since 1970-01-01 of a date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = floor_div(y, 400);
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d) {
  z += 719468;
  int64_t era = floor_div(z, 146097);
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = yoe + era * 400 + (*m <= 2);
}

void tz_civil(int64_t local, struct tz_civil *out) {
  int64_t days = floor_div(local, 86400);
  int64_t secs = local - days * 86400;
  civil_from_days(days, &out->year, &out->month, &out->day);
  out->hour = (int)(secs / 3600);
  out->min = (int)(secs / 60 % 60);
  out->sec = (int)(secs % 60);
  out->wday = (int)(floor_div(days + 4, 7) * -7 + days + 4);   /* 1970-01-01: Thu */
  out->yday = (int)(days - days_from_civil(out->year, 1, 1));
}

int64_t tz_seconds(const struct tz_civil *c) {
  /* Months beyond 1-12 carry into the year; days, hours, ... add up. */
  int64_t y = c->year + floor_div(c->month - 1, 12);
  int m = (int)(c->month - 1 - floor_div(c->month - 1, 12) * 12) + 1;
  int64_t days = days_from_civil(y, m, 1) + (c->day - 1);
  return days * 86400 + (int64_t)c->hour * 3600 + (int64_t)c->min * 60 +
         c->sec;
}

static int64_t year_of(int64_t local) {
  int64_t y;
  int m, d;
  civil_from_days(floor_div(local, 86400), &y, &m, &d);
  return y;
}

/* --- the POSIX rule ------------------------------------------------------ */

/* Local midnight (as local seconds) of a rule's day in year y. */
static int64_t rule_day_local(const struct rule_day *r, int64_t y) {
  int64_t jan1 = days_from_civil(y, 1, 1);
  int64_t day;
  switch (r->kind) {
    case DAY_JULIAN1:
      day = jan1 + r->n - 1 + (is_leap(y) && r->n >= 60);
      break;
    case DAY_JULIAN0:
      day = jan1 + r->n;
      break;
    default: {
      int64_t first = days_from_civil(y, r->month, 1);
      int first_wday = (int)(((first + 4) % 7 + 7) % 7);
      int64_t d = 1 + (r->wday - first_wday + 7) % 7 + (r->week - 1) * 7;
      while (d > tz_month_days(y, r->month)) d -= 7;
      day = first + d - 1;
      break;
    }
  }
  return day * 86400 + r->time;
}

/* The rule's transitions in years y0..y1, ascending: n of them. */
static size_t rule_transitions(const struct tz_rule *r, int64_t y0, int64_t y1,
                               struct segment *out, size_t cap) {
  size_t n = 0;
  if (!r->has_dst) return 0;
  for (int64_t y = y0; y <= y1 && n + 2 <= cap; y++) {
    /* The start's time is read on the standard clock, the end's on the
     * daylight one. */
    struct segment s = {rule_day_local(&r->start, y) - r->std_off, r->dst_off};
    struct segment e = {rule_day_local(&r->end, y) - r->dst_off, r->std_off};
    if (s.start <= e.start) {
      out[n++] = s;
      out[n++] = e;
    } else {
      out[n++] = e;
      out[n++] = s;
    }
  }
  return n;
}

/* The rule's offset at instant t. */
static int32_t rule_offset(const struct tz_rule *r, int64_t t) {
  if (!r->has_dst) return r->std_off;
  struct segment tr[6];
  int64_t y = year_of(t + r->std_off);
  size_t n = rule_transitions(r, y - 1, y + 1, tr, 6);
  int32_t off = r->std_off;
  for (size_t i = 0; i < n && tr[i].start <= t; i++) off = tr[i].off;
  return off;
}

/* --- the zone as segments ----------------------------------------------- */

int32_t tz_offset(const struct tz_zone *z, int64_t t) {
  if (z->ntrans == 0 || t >= z->trans[z->ntrans - 1]) {
    if (z->has_rule) return rule_offset(&z->rule, t);
    return z->ntrans ? z->trans_off[z->ntrans - 1] : z->first_off;
  }
  if (t < z->trans[0]) return z->first_off;
  size_t lo = 0, hi = z->ntrans - 1;   /* trans[lo] <= t < trans[hi] */
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (z->trans[mid] <= t) lo = mid;
    else hi = mid;
  }
  return z->trans_off[lo];
}

int64_t tz_local(const struct tz_zone *z, int64_t t) {
  return t + tz_offset(z, t);
}

static int cmp_segment(const void *a, const void *b) {
  const struct segment *x = a, *y = b;
  return x->start < y->start ? -1 : x->start > y->start;
}

/* The segments covering [from, to]: out[0] starts at from with the offset
 * then, each next one at a transition in (from, to]. Returns how many. */
static size_t segments(const struct tz_zone *z, int64_t from, int64_t to,
                       struct segment *out, size_t cap) {
  size_t n = 0;
  out[n++] = (struct segment){from, tz_offset(z, from)};
  /* Table transitions in (from, to]. */
  size_t lo = 0, hi = z->ntrans;
  while (lo < hi) {   /* first index with trans > from */
    size_t mid = lo + (hi - lo) / 2;
    if (z->trans[mid] <= from) lo = mid + 1;
    else hi = mid;
  }
  for (size_t i = lo; i < z->ntrans && z->trans[i] <= to && n < cap; i++)
    out[n++] = (struct segment){z->trans[i], z->trans_off[i]};
  /* The rule's, after the table. */
  int64_t table_end = z->ntrans ? z->trans[z->ntrans - 1] : INT64_MIN;
  if (z->has_rule && z->rule.has_dst && to > table_end) {
    struct segment tr[16];
    int64_t y0 = year_of(from) - 1, y1 = year_of(to) + 1;
    if (y1 - y0 > 6) y0 = y1 - 6;   /* windows here span days, not years */
    size_t m = rule_transitions(&z->rule, y0, y1, tr, 16);
    qsort(tr, m, sizeof *tr, cmp_segment);
    for (size_t i = 0; i < m && n < cap; i++)
      if (tr[i].start > from && tr[i].start <= to && tr[i].start > table_end)
        out[n++] = tr[i];
  }
  /* Drop transitions that change nothing (a name change, say). */
  size_t w = 1;
  for (size_t i = 1; i < n; i++)
    if (out[i].off != out[w - 1].off) out[w++] = out[i];
  return w;
}

int64_t tz_instant(const struct tz_zone *z, int64_t local) {
  struct segment seg[MAX_SEGMENTS];
  size_t n = segments(z, local - WINDOW, local + WINDOW, seg, MAX_SEGMENTS);
  /* The first instant t with t + off(t) >= local: in the first segment
   * where one exists, the later of its start and local - off. */
  for (size_t i = 0; i < n; i++) {
    int64_t t = local - seg[i].off;
    if (t < seg[i].start) t = seg[i].start;
    if (i + 1 == n || t < seg[i + 1].start) return t;
  }
  return local - seg[n - 1].off;   /* not reached */
}

int64_t tz_local_reached(const struct tz_zone *z, int64_t t) {
  struct segment seg[MAX_SEGMENTS];
  size_t n = segments(z, t - WINDOW, t, seg, MAX_SEGMENTS);
  int64_t reached = t + seg[n - 1].off;
  /* Before each transition the clock showed up to start - 1 + off. */
  for (size_t i = 1; i < n; i++) {
    int64_t before = seg[i].start - 1 + seg[i - 1].off;
    if (before > reached) reached = before;
  }
  return reached;
}

/* --- POSIX TZ strings ----------------------------------------------------- */

/* A zone abbreviation: 3+ letters, or <...> with letters, digits, + and -. */
static bool parse_name(const char **p) {
  const char *s = *p;
  if (*s == '<') {
    s++;
    const char *start = s;
    while (*s && *s != '>') {
      if (!(*s == '+' || *s == '-' || (*s >= '0' && *s <= '9') ||
            (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')))
        return false;
      s++;
    }
    if (*s != '>' || s - start < 3) return false;
    *p = s + 1;
    return true;
  }
  const char *start = s;
  while ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')) s++;
  if (s - start < 3) return false;
  *p = s;
  return true;
}

/* [+-]hh[:mm[:ss]] with hh at most max_hours; seconds into *out. */
static bool parse_hms(const char **p, int max_hours, int32_t *out) {
  const char *s = *p;
  int sign = 1;
  if (*s == '+' || *s == '-') sign = *s++ == '-' ? -1 : 1;
  int part[3] = {0, 0, 0};
  for (int i = 0; i < 3; i++) {
    if (i > 0) {
      if (*s != ':') break;
      s++;
    }
    if (*s < '0' || *s > '9') return false;
    int v = 0, digits = 0;
    while (*s >= '0' && *s <= '9' && digits < 3) {
      v = v * 10 + (*s++ - '0');
      digits++;
    }
    part[i] = v;
  }
  if (part[0] > max_hours || part[1] > 59 || part[2] > 59) return false;
  *out = sign * (part[0] * 3600 + part[1] * 60 + part[2]);
  *p = s;
  return true;
}

static bool parse_int(const char **p, int lo, int hi, int *out) {
  const char *s = *p;
  if (*s < '0' || *s > '9') return false;
  int v = 0;
  while (*s >= '0' && *s <= '9') {
    v = v * 10 + (*s++ - '0');
    if (v > hi) return false;
  }
  if (v < lo) return false;
  *out = v;
  *p = s;
  return true;
}

static bool parse_rule_day(const char **p, struct rule_day *r) {
  const char *s = *p;
  if (*s == 'J') {
    s++;
    r->kind = DAY_JULIAN1;
    if (!parse_int(&s, 1, 365, &r->n)) return false;
  } else if (*s == 'M') {
    s++;
    r->kind = DAY_MONTH;
    if (!parse_int(&s, 1, 12, &r->month) || *s++ != '.' ||
        !parse_int(&s, 1, 5, &r->week) || *s++ != '.' ||
        !parse_int(&s, 0, 6, &r->wday))
      return false;
  } else {
    r->kind = DAY_JULIAN0;
    if (!parse_int(&s, 0, 365, &r->n)) return false;
  }
  r->time = 2 * 3600;
  /* RFC 8536 extends the time to -167..167 hours. */
  if (*s == '/' && (s++, !parse_hms(&s, 167, &r->time))) return false;
  *p = s;
  return true;
}

static bool parse_posix(const char *spec, struct tz_rule *r) {
  const char *s = spec;
  memset(r, 0, sizeof *r);
  int32_t off;
  if (!parse_name(&s) || !parse_hms(&s, 24, &off)) return false;
  r->std_off = -off;   /* POSIX counts west of Greenwich */
  if (!*s) return true;
  if (!parse_name(&s)) return false;
  r->has_dst = true;
  r->dst_off = r->std_off + 3600;
  if (*s && *s != ',') {
    if (!parse_hms(&s, 24, &off)) return false;
    r->dst_off = -off;
  }
  if (!*s) {
    /* No rule: the United States' current one, as glibc assumes. */
    r->start = (struct rule_day){DAY_MONTH, 0, 3, 2, 0, 7200};
    r->end = (struct rule_day){DAY_MONTH, 0, 11, 1, 0, 7200};
    return true;
  }
  if (*s++ != ',' || !parse_rule_day(&s, &r->start) || *s++ != ',' ||
      !parse_rule_day(&s, &r->end))
    return false;
  return *s == '\0';
}

struct tz_zone *tz_from_posix(const char *spec, struct buf *err) {
  struct tz_rule rule;
  if (!parse_posix(spec, &rule)) {
    buf_printf(err, "\"%s\" is not a POSIX TZ string", spec);
    return NULL;
  }
  struct tz_zone *z = xcalloc(1, sizeof *z);
  z->name = xstrdup(spec);
  z->has_rule = true;
  z->rule = rule;
  z->first_off = rule.std_off;
  return z;
}

/* --- TZif files ---------------------------------------------------------- */

struct reader {
  const unsigned char *p, *end;
};

static bool take(struct reader *r, size_t n, const unsigned char **out) {
  if ((size_t)(r->end - r->p) < n) return false;
  *out = r->p;
  r->p += n;
  return true;
}

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         p[3];
}

static int64_t be64(const unsigned char *p) {
  return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

struct tzif_header {
  int version;
  uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
};

static bool read_header(struct reader *r, struct tzif_header *h) {
  const unsigned char *p;
  if (!take(r, 44, &p) || memcmp(p, "TZif", 4) != 0) return false;
  h->version = p[4] == 0 ? 1 : p[4] - '0';
  h->isutcnt = be32(p + 20);
  h->isstdcnt = be32(p + 24);
  h->leapcnt = be32(p + 28);
  h->timecnt = be32(p + 32);
  h->typecnt = be32(p + 36);
  h->charcnt = be32(p + 40);
  return h->version >= 1 && h->version <= 9 && h->typecnt >= 1 &&
         h->typecnt <= 256 && h->timecnt <= 100000 && h->charcnt <= 100000 &&
         h->leapcnt <= 100000 &&
         (h->isutcnt == 0 || h->isutcnt == h->typecnt) &&
         (h->isstdcnt == 0 || h->isstdcnt == h->typecnt);
}

static size_t block_size(const struct tzif_header *h, size_t time_size) {
  return h->timecnt * time_size + h->timecnt + h->typecnt * 6 + h->charcnt +
         h->leapcnt * (time_size + 4) + h->isstdcnt + h->isutcnt;
}

/* Reads one data block into z (times of time_size bytes). */
static bool read_block(struct reader *r, const struct tzif_header *h,
                       size_t time_size, struct tz_zone *z) {
  const unsigned char *times, *idx, *types;
  if (!take(r, h->timecnt * time_size, &times) || !take(r, h->timecnt, &idx) ||
      !take(r, h->typecnt * 6, &types))
    return false;
  const unsigned char *skip;
  if (!take(r, h->charcnt + h->leapcnt * (time_size + 4) + h->isstdcnt +
                   h->isutcnt, &skip))
    return false;
  int32_t offs[256];
  for (uint32_t i = 0; i < h->typecnt; i++) {
    offs[i] = (int32_t)be32(types + 6 * i);
    if (offs[i] <= -MAX_OFFSET || offs[i] >= MAX_OFFSET) return false;
  }
  z->first_off = offs[0];
  z->ntrans = h->timecnt;
  z->trans = xcalloc(h->timecnt ? h->timecnt : 1, sizeof *z->trans);
  z->trans_off = xcalloc(h->timecnt ? h->timecnt : 1, sizeof *z->trans_off);
  for (uint32_t i = 0; i < h->timecnt; i++) {
    z->trans[i] = time_size == 8 ? be64(times + 8 * i)
                                 : (int32_t)be32(times + 4 * i);
    if (idx[i] >= h->typecnt) return false;
    if (i > 0 && z->trans[i] <= z->trans[i - 1]) return false;
    z->trans_off[i] = offs[idx[i]];
  }
  return true;
}

struct tz_zone *tz_parse(const char *name, const unsigned char *data,
                         size_t len, struct buf *err) {
  struct reader r = {data, data + len};
  struct tzif_header h;
  struct tz_zone *z = xcalloc(1, sizeof *z);
  z->name = xstrdup(name);
  if (!read_header(&r, &h)) goto bad;
  if (h.version >= 2) {
    /* Skip the 32-bit block for the 64-bit one and the footer. */
    const unsigned char *skip;
    if (!take(&r, block_size(&h, 4), &skip) || !read_header(&r, &h) ||
        !read_block(&r, &h, 8, z))
      goto bad;
    const unsigned char *nl;
    if (!take(&r, 1, &nl) || *nl != '\n') goto bad;
    const unsigned char *start = r.p;
    while (r.p < r.end && *r.p != '\n') r.p++;
    if (r.p == r.end) goto bad;
    if (r.p > start) {
      char *footer = xstrndup((const char *)start, (size_t)(r.p - start));
      bool ok = parse_posix(footer, &z->rule);
      free(footer);
      if (!ok) goto bad;
      z->has_rule = true;
    }
  } else if (!read_block(&r, &h, 4, z)) {
    goto bad;
  }
  return z;
bad:
  buf_printf(err, "time zone %s: not a valid zone file (TZif)", name);
  tz_free(z);
  return NULL;
}

bool tz_valid_name(const char *name) {
  size_t len = strlen(name);
  if (len == 0 || len > 255 || name[0] == '/') return false;
  const char *comp = name;
  for (const char *p = name;; p++) {
    if (*p == '/' || *p == '\0') {
      size_t n = (size_t)(p - comp);
      if (n == 0 || (n == 1 && comp[0] == '.') ||
          (n == 2 && comp[0] == '.' && comp[1] == '.'))
        return false;
      if (*p == '\0') return true;
      comp = p + 1;
      continue;
    }
    char c = *p;
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
          (c >= '0' && c <= '9') || c == '_' || c == '+' || c == '-' ||
          c == '.'))
      return false;
  }
}

struct tz_zone *tz_read_file(const char *dir, const char *name,
                             struct buf *err) {
  if (!tz_valid_name(name)) {
    buf_printf(err, "\"%s\" is not a time zone name (such as Europe/Berlin)",
               name);
    return NULL;
  }
  if (!dir) dir = getenv("TZDIR");
  if (!dir || !*dir) dir = "/usr/share/zoneinfo";
  struct buf path = BUF_INIT;
  buf_printf(&path, "%s/%s", dir, name);
  FILE *f = fopen(path.data, "rb");
  if (!f) {
    if (errno == ENOENT || errno == ENOTDIR)
      buf_printf(err, "unknown time zone %s (no %s)", name, path.data);
    else
      buf_printf(err, "time zone %s: cannot read %s: %s", name, path.data,
                 strerror(errno));
    buf_free(&path);
    return NULL;
  }
  struct buf data = BUF_INIT;
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && data.len <= MAX_FILE)
    buf_append(&data, chunk, n);
  bool failed = ferror(f) != 0;
  fclose(f);
  struct tz_zone *z = NULL;
  if (failed)
    buf_printf(err, "time zone %s: cannot read %s", name, path.data);
  else if (data.len > MAX_FILE)
    buf_printf(err, "time zone %s: %s is too large to be a zone file", name,
               path.data);
  else
    z = tz_parse(name, (const unsigned char *)(data.data ? data.data : ""),
                 data.len, err);
  buf_free(&data);
  buf_free(&path);
  return z;
}
