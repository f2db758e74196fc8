/* SIGINT and SIGTERM: the loop hears of each one, and a repeated signal
 * ends the process even when the loop cannot.
 *
 * The handler only counts the signal and writes it to a pipe the loop
 * reads; the loop then calls on_signal(sig, count): the first asks for a
 * graceful stop, a later one for an exit at once. Should the loop not come
 * back to act on a repeated signal within SIGNALS_WATCHDOG_S (Lua stuck in
 * a C call, a blocking library), the watchdog exits the process from the
 * signal path with status 128 + the signal.
 *
 * Layer: base (libevent and POSIX only). One per process. */
#ifndef TGHOST_SIGNALS_H
#define TGHOST_SIGNALS_H

#include <event2/event.h>

#define SIGNALS_WATCHDOG_S 2

struct signals;

typedef void (*signals_fn)(int sig, int count, void *ud);

/* NULL (after logging why) if the handlers cannot be installed. */
struct signals *signals_new(struct event_base *base, signals_fn on_signal,
                            void *ud);
/* Restores the default handlers. */
void signals_free(struct signals *s);

#endif
