/* sequentialize for Lua: the host-wide key map (src/seqmap.c) and the C
 * primitive lua/sequentialize.lua calls, the module tghost.seq.
 *
 * The map belongs to the host, not to a Lua state, so it outlives a hot
 * reload: updates of an old and a new generation queue on the same keys.
 * Each job that acquires keys gets a holder, registered as one of the job's
 * cleanup handlers (task.h), which releases it however the job ends
 * (finished, failed, timed out, cancelled) and lets its successors run.
 *
 *   seq.acquire(keys) -> closer, waited | nothing
 *       keys: a string, an integer (a float with an integral value counts
 *       as that integer), a list of them, or nil (no constraint). Queues
 *       the running job on each key and, if an earlier job holds one of
 *       them, parks the job (its concurrency slot may serve other updates)
 *       and suspends the task until every earlier holder is done and the
 *       job holds a slot again. Returns a to-be-closed value whose close
 *       releases the keys this call added (so `local held <close> =
 *       seq.acquire(k)` scopes them), and true if it had to wait; whatever
 *       is still held is released when the job ends. Misuse raises.
 *   seq.stats() -> keys, links      what is in flight, for tests */
#ifndef TGHOST_LUASEQ_H
#define TGHOST_LUASEQ_H

#include <stdbool.h>

#include <lua.h>

struct job;
struct luaseq;

/* For conversations (luaconv.c): a job that waits for its user's next
 * update steps out of the queues of every key it holds, so the updates
 * behind it run meanwhile (/cancel among them); it keeps the keys' frames,
 * so its closers work as before. Returns false if it holds no key, or if
 * one of its tasks still waits for keys (then nothing changes). */
bool luaseq_step_aside(struct luaseq *s, struct job *job);
/* Queues a job that stepped aside again, at the tail of each of its keys;
 * granted(job, arg) runs once it holds them all (before this returns if
 * nobody else has them). Never runs if the job ends first. */
void luaseq_rejoin(struct luaseq *s, struct job *job,
                   void (*granted)(struct job *job, void *arg), void *arg);

/* Creates the map (app/bindenv.c makes the one of struct script_env). */
struct luaseq *luaseq_new(void);
/* After every job has ended. */
void luaseq_free(struct luaseq *s);

int luaopen_tghost_seq(lua_State *L);

#endif
