/* Time zones of the IANA database, read from its compiled files (TZif,
 * RFC 8536, under /usr/share/zoneinfo), without the C library's tzset()
 * and its one process-wide zone: each zone is a value, many can be in use
 * at once, and nothing here reads the environment or the disk except
 * tz_read_file.
 *
 * A zone is a table of transitions (the instants its UTC offset changes)
 * and, for instants after the table, the POSIX TZ rule of the file's
 * footer ("CET-1CEST,M3.5.0,M10.5.0/3"), evaluated for any year. A zone
 * can also be made from a POSIX TZ string alone.
 *
 * Instants are Unix seconds (UTC). A "local time" is the wall clock as a
 * count of seconds too: the Unix seconds the same calendar date and time
 * would have in UTC (tz_civil converts it to a date). Local time is not a
 * function's inverse: when the clock goes back an hour, local times repeat
 * (an overlap); when it goes forward, some never happen (a gap). The rule
 * here, for naming an instant by a local time (tz_instant):
 *
 *   the instant of local time L is the first instant whose local time is
 *   L or later: a repeated local time names its first occurrence, and a
 *   skipped one names the instant the gap ends (02:30 on the night the
 *   clock jumps from 02:00 to 03:00 is 03:00).
 *
 * That mapping never goes backwards (a later local time never names an
 * earlier instant), which is what a schedule walking local time needs.
 *
 * Leap seconds (the "right/" zones) are ignored: Unix time has none.
 *
 * Layer: base (pure C; tz_read_file is the one blocking call: run it off
 * the loop). */
#ifndef TGHOST_TZFILE_H
#define TGHOST_TZFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

struct tz_zone;

/* UTC, built in (never freed). */
const struct tz_zone *tz_utc(void);

/* Parses the bytes of a TZif file (versions 1 to 4). NULL with err set
 * when they are not one. name is kept for messages. */
struct tz_zone *tz_parse(const char *name, const unsigned char *data,
                         size_t len, struct buf *err);
/* A zone from a POSIX TZ string ("EST5EDT,M3.2.0,M11.1.0",
 * "<+0330>-3:30"). NULL with err set when it is not one. */
struct tz_zone *tz_from_posix(const char *spec, struct buf *err);
void tz_free(struct tz_zone *z);
const char *tz_name(const struct tz_zone *z);

/* Whether name can name a zone file: a relative path of letters, digits
 * and "/_+-.", no empty, "." or ".." component, at most 255 bytes. */
bool tz_valid_name(const char *name);
/* Reads and parses the zone name under dir (NULL: $TZDIR, else
 * /usr/share/zoneinfo). Blocking disk I/O. NULL with err set. */
struct tz_zone *tz_read_file(const char *dir, const char *name,
                             struct buf *err);

/* The UTC offset in force at instant t, in seconds east of UTC. */
int32_t tz_offset(const struct tz_zone *z, int64_t t);
/* The local time at instant t. */
int64_t tz_local(const struct tz_zone *z, int64_t t);
/* The instant local time L names (the rule above). */
int64_t tz_instant(const struct tz_zone *z, int64_t local);
/* The latest local time shown at or before instant t: tz_local(t), or
 * more just after the clock went back (the repeated hour's first pass
 * showed later times). A local time after this one names an instant after
 * t; one at or before it, an instant at or before t. */
int64_t tz_local_reached(const struct tz_zone *z, int64_t t);

/* A calendar date and time of day. month 1-12, day 1-31, wday 0-6
 * (Sunday 0), yday 0-365. */
struct tz_civil {
  int64_t year;
  int month, day, hour, min, sec, wday, yday;
};

/* Local seconds <-> calendar (proleptic Gregorian). tz_seconds ignores
 * wday and yday and accepts out-of-range fields (day 32 is the next
 * month's first), as timegm does. */
void tz_civil(int64_t local, struct tz_civil *out);
int64_t tz_seconds(const struct tz_civil *c);
/* Days in month (1-12) of year. */
int tz_month_days(int64_t year, int month);

#endif
