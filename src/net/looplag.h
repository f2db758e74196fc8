/* Loop lag: a warning in the log when the event loop was blocked for longer
 * than the CPU budget allows.
 *
 * The CPU guard stops Lua code that runs too long without yielding, but it
 * cannot stop a handler blocked inside a C function or a system call: a
 * blocking os.execute, io.popen or C module, a huge string.rep. Every other
 * update waits meanwhile. This module notices such a stall afterwards: a
 * timer that should fire every interval_ms measures how late it fires, and
 * a lateness beyond the budget plus the guard's own reaction time (the
 * longest a loop it stops can hold the loop) is logged once per stall,
 * with its length.
 *
 * Layer: the loop (libevent, the clock and the log only). Cost: one timer
 * wakeup every interval_ms (half the budget, within 100 ms to 1 s). */
#ifndef TGHOST_LOOPLAG_H
#define TGHOST_LOOPLAG_H

#include <event2/event.h>

struct looplag;

/* A counter that moves whenever the CPU guard has stopped something: a
 * stall during which it moved was the guard's doing (a handler it stopped,
 * which a busy machine may have made take longer than its budget). */
typedef unsigned long (*looplag_stops_fn)(void *ud);

/* Watches base; warns about stalls longer than budget_ms + the guard's
 * reaction time, unless stops (may be NULL) moved meanwhile. NULL when the
 * timer cannot be created. */
struct looplag *looplag_new(struct event_base *base, long budget_ms,
                            looplag_stops_fn stops, void *ud);
void looplag_free(struct looplag *l);

#endif
