/* Cron schedules: the standard five fields, evaluated in a time zone.
 *
 *   minute hour day-of-month month day-of-week
 *   "0 9 * * 1-5"         09:00 on weekdays
 *   "0-59/15 * * * *"     every quarter hour (as is star-slash-15)
 *   "0 0 1,15 * *"        midnight on the 1st and the 15th
 *
 * Each field is a list of items separated by commas; an item is "*", a
 * number, or a range "a-b", each optionally with a step "/n" ("a/n" is
 * "a-max/n"). Months and days of the week may be names (JAN-DEC,
 * SUN-SAT, any case); day of week 0 and 7 are both Sunday. The macros
 * @yearly (@annually), @monthly, @weekly, @daily (@midnight) and @hourly
 * stand for their usual expansions.
 *
 * Days follow Vixie cron's rule: when the day-of-month or the
 * day-of-week field starts with "*", a day must match both fields;
 * otherwise either ("0 0 1 * 1" fires on the 1st and on every Monday).
 *
 * Fire times are local times of the zone; cron_next names them as
 * tzfile.h's rule does: a local time the clock skips (the spring change)
 * fires when the skip ends, once, and one the clock repeats (the autumn
 * change) fires at its first occurrence only. So each local time fires at
 * most once, and a schedule with a wildcard hour (every quarter hour, say)
 * pauses for the repeated hour instead of firing twice.
 *
 * Layer: base (pure C). */
#ifndef TGHOST_CRON_H
#define TGHOST_CRON_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/tzfile.h"

struct cron_expr {
  uint64_t minutes;     /* bit m: minute m (0-59) */
  uint32_t hours;       /* bit h (0-23) */
  uint32_t mdays;       /* bit d (1-31) */
  uint16_t months;      /* bit m (1-12) */
  uint8_t wdays;        /* bit d (0-6, Sunday 0) */
  bool mday_star, wday_star;   /* the field starts with "*" */
};

/* Parses text. 0, or -1 with err saying what is wrong ("hour 25 is out of
 * range 0-23") and nothing else (the caller names the expression). An
 * expression that never fires (February 30) is refused too. */
int cron_parse(const char *text, struct cron_expr *out, struct buf *err);

/* The first instant after `after` (Unix seconds) at which e fires in zone
 * z, or -1 if none within the next 30 years. Costs one step per month,
 * day, hour or minute skipped, a few hundred at most for an expression
 * that fires at least yearly. */
int64_t cron_next(const struct cron_expr *e, const struct tz_zone *z,
                  int64_t after);

#endif
