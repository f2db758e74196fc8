/* Time zones by name, for schedules: each zone is read from the IANA
 * database (base/tzfile.h) once, on a worker thread, and then kept for the
 * life of the process, so neither a script naming a zone nor a scheduled
 * job's next fire time ever reads the disk on the loop.
 *
 * The name "" is the system's zone: $TZ (a zone name, ":name", or a POSIX
 * TZ string), else /etc/localtime, else UTC. "UTC" is built in.
 *
 * Layer: jobs (pipeline folder). The worker thread starts with the first
 * load and stops with tzcache_free. */
#ifndef TGHOST_TZCACHE_H
#define TGHOST_TZCACHE_H

#include <event2/event.h>

#include "base/tzfile.h"

struct tzcache;

/* Told once, from the loop, when a load has ended: zone (valid as long as
 * the cache), or NULL and why. */
typedef void (*tzcache_fn)(void *ud, const struct tz_zone *zone,
                           const char *error);

struct tzcache *tzcache_new(struct event_base *base);
/* Stops the worker (waiting for the file it reads) and frees every zone;
 * loads not ended are dropped without their callback. */
void tzcache_free(struct tzcache *c);

/* The zone if it is loaded already, else NULL. */
const struct tz_zone *tzcache_get(struct tzcache *c, const char *name);
/* Loads name (at once from the loop if it is loaded already). */
void tzcache_load(struct tzcache *c, const char *name, tzcache_fn done,
                  void *ud);
/* How messages name the zone called name ("" is "the system's zone"). */
const char *tzcache_display(const char *name);

#endif
