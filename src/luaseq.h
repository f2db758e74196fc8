/* sequentialize for Lua: the host-wide key map (src/seqmap.c) and the C
 * primitive lua/sequentialize.lua calls, the module tghost.seq.
 *
 * The map belongs to the host, not to a Lua state, so it outlives a hot
 * reload: updates of an old and a new generation queue on the same keys.
 * Each job that acquires keys gets a holder, registered as one of the job's
 * cleanup handlers (task.h), which releases it however the job ends
 * (finished, failed, timed out, cancelled) and lets its successors run.
 *
 *   seq.acquire(keys) -> closer | nothing
 *       keys: a string, an integer (a float with an integral value counts
 *       as that integer), a list of them, or nil (no constraint). Queues
 *       the running job on each key and, if an earlier job holds one of
 *       them, parks the job (its concurrency slot may serve other updates)
 *       and suspends the task until every earlier holder is done and the
 *       job holds a slot again. Returns a to-be-closed value whose close
 *       releases the keys this call added (so `local held <close> =
 *       seq.acquire(k)` scopes them); whatever is still held is released
 *       when the job ends. Misuse raises.
 *   seq.stats() -> keys, links      what is in flight, for tests */
#ifndef TGHOST_LUASEQ_H
#define TGHOST_LUASEQ_H

#include <lua.h>

struct host;
struct luaseq;

/* Creates the map (main.c attaches it to the host as h->seq). */
struct luaseq *luaseq_new(struct host *h);
/* After every job has ended. */
void luaseq_free(struct luaseq *s);

int luaopen_tghost_seq(lua_State *L);

#endif
