/* Unit tests of time zones (src/base/tzfile.c) and cron schedules
 * (src/base/cron.c).
 *
 *   - next_fire_table: a table of known next-fire times (month ends, leap
 *     days, Vixie's day rule, names and macros, and DST changes in named
 *     zones, both hemispheres, beyond the zone file's table too). Each
 *     expectation was checked by a brute-force scan of every minute in
 *     another implementation (Python's zoneinfo) before it was written
 *     here.
 *   - offsets_match_glibc: tz_offset against the C library's localtime_r
 *     (tm_gmtoff) at random instants from 1900 to 2100 in zones with odd
 *     histories (negative DST, 30-minute DST, a skipped day, a 2-hour
 *     DST, Ramadan changes), and for POSIX TZ strings.
 *   - instants_are_first: tz_instant(L) is the first instant whose local
 *     time (by glibc) reaches L, for random L around transitions.
 *   - next_matches_brute_force: cron_next against a minute-by-minute scan
 *     of local time for random expressions in a DST zone.
 *   - parse_errors: what is refused, and how it is said. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/cron.h"
#include "base/tzfile.h"

#include "check.h"
#include "testreg.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dULL;
}

static struct tz_zone *zone(const char *name) {
  struct buf err = BUF_INIT;
  struct tz_zone *z = tz_read_file(NULL, name, &err);
  if (!z && strstr(err.data, "unknown time zone")) {
    fprintf(stderr, "skipped: %s (is tzdata installed?)\n", err.data);
    exit(77);
  }
  CHECK(z, "%s", err.data);
  buf_free(&err);
  return z;
}

/* The C library's offset at t in the zone TZ names. */
static long glibc_offset(const char *tz, int64_t t) {
  static char current[256];
  if (strcmp(current, tz) != 0) {
    setenv("TZ", tz, 1);
    tzset();
    snprintf(current, sizeof current, "%s", tz);
  }
  time_t tt = (time_t)t;
  struct tm tm;
  CHECK(localtime_r(&tt, &tm), "localtime_r(%lld)", (long long)t);
  return tm.tm_gmtoff;
}

/* --- known next-fire times ------------------------------------------------ */

static const struct {
  const char *expr, *zone;
  int64_t after, next;
  const char *note;    /* the next fire time, in the zone */
} table[] = {
    {"0 9 * * 1-5", "UTC", 1735894800, 1736154000, "Fri -> Mon 2025-01-06 09:00"},
    {"0 0 31 * *", "UTC", 1738281600, 1743379200, "Jan 31 -> Mar 31 (no Feb 31)"},
    {"0 12 30 * *", "UTC", 1738238400, 1743336000, "Jan 30 -> Mar 30 (no Feb 30)"},
    {"0 0 29 2 *", "UTC", 1735689600, 1835395200, "2025 -> leap day 2028-02-29"},
    {"0 0 29 2 *", "UTC", 4044470400, 4233686400, "2098-03-01 -> 2104-02-29 (2100 is no leap year)"},
    {"0 0 29 2 *", "Europe/Berlin", 1803855600, 1835391600, "2027 -> 2028-02-29 00:00+01"},
    {"59 23 28-31 2 *", "UTC", 1740614400, 1740787140, "Feb 28 23:59 (2025: no 29th)"},
    {"0 0 1 * *", "UTC", 1735689540, 1735689600, "Dec 31 23:59 -> Jan 1 00:00"},
    {"0 0 31 12 *", "UTC", 1767139200, 1798675200, "year end -> next year end"},
    {"*/15 * * * *", "UTC", 1746446820, 1746447300, "12:07 -> 12:15"},
    {"* * * * *", "UTC", 1746446430, 1746446460, "12:00:30 -> 12:01"},
    {"0 0 13 * 5", "UTC", 1749513600, 1749772800, "Vixie: Friday the 13th"},
    {"0 0 13 * 5", "UTC", 1749772800, 1750377600, "Vixie: then the next Friday"},
    {"0 0 13 * 5", "UTC", 1752192000, 1752364800, "Vixie: the 13th, a Sunday"},
    {"0 0 */2 * 1", "UTC", 1748736000, 1749427200, "starred day: odd day AND Monday"},
    {"0 0 * * 0", "UTC", 1748736000, 1749340800, "Sunday as 0"},
    {"0 0 * * 7", "UTC", 1748822400, 1749340800, "Sunday as 7"},
    {"@weekly", "UTC", 1748736000, 1749340800, "@weekly: Sunday midnight"},
    {"0 8 * JAN,JUL MON", "UTC", 1738281600, 1751875200, "names: first Monday in July"},
    {"0 0 * * *", "Asia/Kathmandu", 1735689600, 1735755300, "midnight at +05:45"},
    /* Europe/Berlin, 2025-03-30: 02:00 CET -> 03:00 CEST. */
    {"30 2 * * *", "Europe/Berlin", 1743211800, 1743296400, "skipped 02:30 fires at 03:00+02"},
    {"30 2 * * *", "Europe/Berlin", 1743296400, 1743381000, "then 02:30+02 the day after"},
    {"0 3 * * *", "Europe/Berlin", 1743213600, 1743296400, "03:00+02, the gap's end"},
    /* Europe/Berlin, 2025-10-26: 03:00 CEST -> 02:00 CET. */
    {"30 2 * * *", "Europe/Berlin", 1761352200, 1761438600, "repeated 02:30: the first (+02)"},
    {"30 2 * * *", "Europe/Berlin", 1761438600, 1761528600, "not the second: 02:30+01 next day"},
    {"0 2 * * 0", "Europe/Berlin", 1760832000, 1761436800, "02:00+02, first pass"},
    {"*/30 * * * *", "Europe/Berlin", 1761438600, 1761444000, "pauses for the repeated hour"},
    {"30 2 * * *", "Europe/Berlin", 1761441300, 1761528600, "from 02:15+01 (second pass): next day"},
    {"45 2 * * *", "Europe/Berlin", 1761441300, 1761529500, "from 02:15+01: 02:45 was shown already"},
    {"0 3 * * *", "Europe/Berlin", 1761441300, 1761444000, "from 02:15+01: 03:00+01 the same day"},
    /* America/New_York, 2025-03-09: 02:00 EST -> 03:00 EDT. */
    {"0 9 * * *", "America/New_York", 1741442400, 1741525200, "09:00-05 -> 09:00-04"},
    {"0 2 * * *", "America/New_York", 1741417200, 1741503600, "skipped 02:00 -> 03:00-04"},
    /* Australia/Sydney, 2025-10-05: 02:00 AEST -> 03:00 AEDT. */
    {"0 9 * * *", "Australia/Sydney", 1759532400, 1759615200, "09:00+10 -> 09:00+11"},
    /* Beyond 2037: the zone file's POSIX rule. */
    {"0 12 1 7 *", "Europe/Berlin", 2208985200, 2224749600, "2040-07-01 12:00+02"},
    {"30 2 * * *", "Europe/Berlin", 2531871000, 2531955600, "2050-03-27: skipped 02:30 -> 03:00+02"},
};

TEST(next_fire_table) {
  for (size_t i = 0; i < sizeof table / sizeof *table; i++) {
    struct cron_expr e;
    struct buf err = BUF_INIT;
    CHECK(cron_parse(table[i].expr, &e, &err) == 0, "%s: %s", table[i].expr,
          err.data);
    buf_free(&err);
    struct tz_zone *z = strcmp(table[i].zone, "UTC") == 0
                            ? NULL
                            : zone(table[i].zone);
    int64_t got = cron_next(&e, z ? z : tz_utc(), table[i].after);
    CHECK(got == table[i].next,
          "\"%s\" in %s after %lld: got %lld, expected %lld (%s)",
          table[i].expr, table[i].zone, (long long)table[i].after,
          (long long)got, (long long)table[i].next, table[i].note);
    tz_free(z);
  }
}

/* --- zones against the C library ----------------------------------------- */

static const char *const odd_zones[] = {
    "Europe/Berlin",   "America/New_York", "Australia/Sydney",
    "Australia/Lord_Howe", "Asia/Kathmandu", "America/Sao_Paulo",
    "Pacific/Apia",    "Europe/Dublin",    "Africa/Casablanca",
    "America/St_Johns", "Antarctica/Troll", "Europe/London",
    "Asia/Tokyo",      "Pacific/Chatham",  "Etc/UTC",
};

TEST(offsets_match_glibc) {
  const int64_t from = -2208988800LL;   /* 1900 */
  const int64_t span = 6311433600LL;    /* to 2100 */
  for (size_t zi = 0; zi < sizeof odd_zones / sizeof *odd_zones; zi++) {
    struct tz_zone *z = zone(odd_zones[zi]);
    for (int i = 0; i < 20000; i++) {
      int64_t t = from + (int64_t)(rnd() % (uint64_t)span);
      long want = glibc_offset(odd_zones[zi], t);
      CHECK(tz_offset(z, t) == want, "%s at %lld: %d, glibc says %ld",
            odd_zones[zi], (long long)t, tz_offset(z, t), want);
    }
    tz_free(z);
  }
  static const char *const posix[] = {
      "EST5EDT,M3.2.0,M11.1.0", "CET-1CEST,M3.5.0,M10.5.0/3",
      "AEST-10AEDT,M10.1.0,M4.1.0/3", "<+0545>-5:45", "IST-1GMT0,M10.5.0,M3.5.0/1",
      "<-03>3<-02>,M3.5.0/-2,M10.5.0/-1", "NZST-12NZDT,M9.5.0,M4.1.0/3",
      "XXX3YYY,J60/2,J300/2", "ABC-2DEF,59/1,300/4"};
  for (size_t pi = 0; pi < sizeof posix / sizeof *posix; pi++) {
    struct buf err = BUF_INIT;
    struct tz_zone *z = tz_from_posix(posix[pi], &err);
    CHECK(z, "%s: %s", posix[pi], err.data);
    for (int i = 0; i < 20000; i++) {
      int64_t t = 946684800 + (int64_t)(rnd() % 3155760000ULL);   /* 2000-2100 */
      long want = glibc_offset(posix[pi], t);
      CHECK(tz_offset(z, t) == want, "%s at %lld: %d, glibc says %ld",
            posix[pi], (long long)t, tz_offset(z, t), want);
    }
    tz_free(z);
    buf_free(&err);
  }
  /* Daylight time all year (RFC 8536's example of hours past 24, which
   * glibc does not read as the RFC says): never standard time. */
  struct buf err = BUF_INIT;
  struct tz_zone *z = tz_from_posix("WART4WARST,J1/0,J365/25", &err);
  CHECK(z, "%s", err.data);
  for (int i = 0; i < 20000; i++) {
    int64_t t = 946684800 + (int64_t)(rnd() % 3155760000ULL);
    CHECK(tz_offset(z, t) == -3 * 3600, "all-year DST at %lld: %d",
          (long long)t, tz_offset(z, t));
  }
  tz_free(z);
  buf_free(&err);
}

/* The first instant at which glibc's local time reaches L, scanning from
 * L - 27 h by minutes and then by seconds. */
static int64_t glibc_first_reaching(const char *tz, int64_t L) {
  int64_t t = L - 27 * 3600;
  while (t + glibc_offset(tz, t) < L) t += 60;
  int64_t lo = t - 60;   /* local(lo) < L: walk seconds from there */
  for (int64_t s = lo + 1; s <= t; s++)
    if (s + glibc_offset(tz, s) >= L) return s;
  return t;
}

TEST(instants_are_first) {
  static const char *const zones[] = {"Europe/Berlin", "Australia/Lord_Howe",
                                      "Pacific/Apia", "America/St_Johns"};
  for (size_t zi = 0; zi < sizeof zones / sizeof *zones; zi++) {
    struct tz_zone *z = zone(zones[zi]);
    for (int i = 0; i < 300; i++) {
      /* Near the zone's transitions half the time: a random instant and
       * the local times around a change within a day of it. */
      int64_t t = 946684800 + (int64_t)(rnd() % 1577836800ULL);   /* 2000-2050 */
      int64_t L = tz_local(z, t) + (int64_t)(rnd() % 7200) - 3600;
      if (i % 2 == 0) {
        int32_t off = tz_offset(z, t);
        for (int64_t s = t; s < t + 86400 * 200; s += 3600) {
          if (tz_offset(z, s) != off) {
            L = s + off + (int64_t)(rnd() % 7200) - 3600;
            break;
          }
        }
      }
      int64_t want = glibc_first_reaching(zones[zi], L);
      CHECK(tz_instant(z, L) == want, "%s: local %lld: %lld, expected %lld",
            zones[zi], (long long)L, (long long)tz_instant(z, L),
            (long long)want);
      /* And the latest local time shown by then is L's or later. */
      CHECK(tz_local_reached(z, want) >= L && tz_local_reached(z, want - 1) < L,
            "%s: local time reached around %lld", zones[zi], (long long)want);
    }
    tz_free(z);
  }
}

/* --- cron against brute force --------------------------------------------- */

static bool brute_matches(const struct cron_expr *e, int64_t local) {
  struct tz_civil c;
  tz_civil(local, &c);
  if (!(e->minutes >> c.min & 1) || !(e->hours >> c.hour & 1) ||
      !(e->months >> c.month & 1))
    return false;
  bool md = e->mdays >> c.day & 1, wd = e->wdays >> c.wday & 1;
  return (e->mday_star || e->wday_star) ? md && wd : md || wd;
}

/* Every minute instant after `after`: it fires at t when a matching local
 * minute lies in the local times first shown between the previous step
 * and t. */
static int64_t brute_next(const struct cron_expr *e, const struct tz_zone *z,
                          int64_t after, int64_t limit) {
  int64_t shown = tz_local_reached(z, after);
  for (int64_t t = after + 1; t <= after + limit; t++) {
    int64_t local = tz_local(z, t);
    if (local <= shown) continue;
    /* Local minutes in (shown, local]. */
    int64_t m = (shown / 60 + 1) * 60;
    for (; m <= local; m += 60)
      if (brute_matches(e, m)) return t;
    shown = local;
    /* Jump to just before the next whole local minute. */
    int64_t skip = 60 - (local % 60 + 60) % 60 - 1;
    if (skip > 0) t += skip;
  }
  return -1;
}

static void random_field(struct buf *b, int lo, int hi) {
  switch (rnd() % 5) {
    case 0:
      buf_append_str(b, "*");
      break;
    case 1:
      buf_printf(b, "*/%d", 1 + (int)(rnd() % 7));
      break;
    case 2:
      buf_printf(b, "%d", lo + (int)(rnd() % (unsigned)(hi - lo + 1)));
      break;
    case 3: {
      int a = lo + (int)(rnd() % (unsigned)(hi - lo + 1));
      int c = a + (int)(rnd() % (unsigned)(hi - a + 1));
      buf_printf(b, "%d-%d", a, c);
      break;
    }
    default:
      buf_printf(b, "%d,%d", lo + (int)(rnd() % (unsigned)(hi - lo + 1)),
                 lo + (int)(rnd() % (unsigned)(hi - lo + 1)));
      break;
  }
}

TEST(next_matches_brute_force) {
  struct tz_zone *z = zone("Europe/Berlin");
  int checked = 0;
  for (int i = 0; i < 400; i++) {
    struct buf text = BUF_INIT, err = BUF_INIT;
    random_field(&text, 0, 59);
    buf_append_char(&text, ' ');
    /* Hours near the change at times, so gaps and overlaps come up. */
    if (rnd() % 2) buf_printf(&text, "%d", 1 + (int)(rnd() % 3));
    else random_field(&text, 0, 23);
    buf_append_char(&text, ' ');
    random_field(&text, 1, 31);
    buf_append_str(&text, " * ");
    random_field(&text, 0, 6);
    struct cron_expr e;
    if (cron_parse(text.data, &e, &err) != 0) {
      buf_free(&text);
      buf_free(&err);
      continue;
    }
    /* Mostly within days of a DST change. */
    static const int64_t changes[] = {1743296400, 1761440400, 1711846800,
                                      1729990800};
    int64_t after = changes[rnd() % 4] - (int64_t)(rnd() % (3 * 86400));
    if (rnd() % 3 == 0)   /* within the two hours after the change */
      after = changes[rnd() % 4] + (int64_t)(rnd() % 7200);
    if (rnd() % 4 == 0) after += (int64_t)(rnd() % 60);
    int64_t want = brute_next(&e, z, after, 120LL * 86400);
    if (want >= 0) {
      int64_t got = cron_next(&e, z, after);
      CHECK(got == want, "\"%s\" after %lld: %lld, brute force %lld",
            text.data, (long long)after, (long long)got, (long long)want);
      checked++;
    }
    buf_free(&text);
    buf_free(&err);
  }
  CHECK(checked > 200, "only %d expressions fired within the window", checked);
  tz_free(z);
}

/* --- parsing ------------------------------------------------------------------ */

TEST(parse_errors) {
  static const struct {
    const char *text, *error;
  } bad[] = {
      {"0 25 * * *", "hour 25 is out of range 0-23"},
      {"60 * * * *", "minute 60 is out of range 0-59"},
      {"* * 0 * *", "day of month 0 is out of range 1-31"},
      {"* * * 13 *", "month 13 is out of range 1-12"},
      {"* * * * 8", "day of week 8 is out of range 0-7"},
      {"* * * * FOO", "\"FOO\" is not a day of week"},
      {"5-1 * * * *", "minute range 5-1 goes backwards"},
      {"*/0 * * * *", "minute step 0 is out of range 1-59"},
      {"* * * *", "expected 5 fields"},
      {"* * * * * *", "got more"},
      {"0 0 30 2 *", "never fires"},
      {"0 0 31 4,6,9,11 *", "never fires"},
      {"@reboot", "unknown macro @reboot"},
      {"1,,2 * * * *", "is not a minute"},
      {"* * * JANUARY *", "is not a month"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    struct cron_expr e;
    struct buf err = BUF_INIT;
    CHECK(cron_parse(bad[i].text, &e, &err) != 0, "\"%s\" was accepted",
          bad[i].text);
    CHECK(err.data && strstr(err.data, bad[i].error),
          "\"%s\": \"%s\" does not say \"%s\"", bad[i].text,
          err.data ? err.data : "", bad[i].error);
    buf_free(&err);
  }
  /* Names, lists, steps and macros that mean the same as numbers. */
  static const struct {
    const char *a, *b;
  } same[] = {
      {"0 9 * * mon-fri", "0 9 * * 1-5"},
      {"0 0 1 jan,Jul *", "0 0 1 1,7 *"},
      {"@daily", "0 0 * * *"},
      {"@midnight", "0 0 * * *"},
      {"@monthly", "0 0 1 * *"},
      {"@yearly", "0 0 1 1 *"},
      {"@hourly", "0 * * * *"},
      {"5/20 * * * *", "5,25,45 * * * *"},
      {"0-59/30 * * * *", "0,30 * * * *"},
      {"0 0 * * 5-7", "0 0 * * 0,5,6"},
      {"  0\t0  * * *  ", "0 0 * * *"},
  };
  for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
    struct cron_expr a, b;
    struct buf err = BUF_INIT;
    CHECK(cron_parse(same[i].a, &a, &err) == 0, "%s: %s", same[i].a, err.data);
    CHECK(cron_parse(same[i].b, &b, &err) == 0, "%s: %s", same[i].b, err.data);
    CHECK(memcmp(&a, &b, sizeof a) == 0, "\"%s\" differs from \"%s\"",
          same[i].a, same[i].b);
    buf_free(&err);
  }
}

TEST(zone_names_and_files) {
  CHECK(tz_valid_name("Europe/Berlin"), "Europe/Berlin");
  CHECK(tz_valid_name("Etc/GMT+5"), "Etc/GMT+5");
  static const char *const bad[] = {"", "/etc/passwd", "../etc/passwd",
                                    "Europe/../../x", "a//b", "Europe/ Berlin",
                                    "./UTC"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    CHECK(!tz_valid_name(bad[i]), "\"%s\" accepted", bad[i]);
  struct buf err = BUF_INIT;
  CHECK(!tz_read_file(NULL, "Mars/Olympus_Mons", &err) &&
            strstr(err.data, "unknown time zone Mars/Olympus_Mons"),
        "%s", err.data ? err.data : "(accepted)");
  buf_reset(&err);
  const unsigned char junk[] = "TZif2 not really";
  CHECK(!tz_parse("Junk", junk, sizeof junk, &err) &&
            strstr(err.data, "not a valid zone file"),
        "%s", err.data ? err.data : "(accepted)");
  buf_reset(&err);
  CHECK(!tz_from_posix("EST", &err) && strstr(err.data, "not a POSIX TZ"),
        "%s", err.data ? err.data : "(accepted)");
  buf_free(&err);
  /* Truncations of a real file are refused, never read past. */
  FILE *f = fopen("/usr/share/zoneinfo/Europe/Berlin", "rb");
  if (f) {
    unsigned char data[8192];
    size_t n = fread(data, 1, sizeof data, f);
    fclose(f);
    for (size_t cut = 0; cut + 1 < n; cut += 7) {
      unsigned char *copy = malloc(cut ? cut : 1);
      memcpy(copy, data, cut);
      struct buf e = BUF_INIT;
      struct tz_zone *z = tz_parse("cut", copy, cut, &e);
      tz_free(z);
      free(copy);
      buf_free(&e);
    }
  }
}

TEST(calendar_round_trips) {
  for (int i = 0; i < 100000; i++) {
    int64_t s = (int64_t)(rnd() % 20000000000ULL) - 10000000000LL;
    struct tz_civil c;
    tz_civil(s, &c);
    CHECK(tz_seconds(&c) == s, "%lld -> %lld-%d-%d -> %lld", (long long)s,
          (long long)c.year, c.month, c.day, (long long)tz_seconds(&c));
    time_t tt = (time_t)s;
    struct tm tm;
    gmtime_r(&tt, &tm);
    CHECK(c.year == tm.tm_year + 1900LL && c.month == tm.tm_mon + 1 &&
              c.day == tm.tm_mday && c.hour == tm.tm_hour &&
              c.min == tm.tm_min && c.sec == tm.tm_sec &&
              c.wday == tm.tm_wday && c.yday == tm.tm_yday,
          "%lld: calendar differs from gmtime_r", (long long)s);
  }
}
