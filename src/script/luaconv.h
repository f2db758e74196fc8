/* Conversations for Lua: ctx:wait's C side (the module tghost.conv that
 * lua/conversation.lua calls) and the routing of each incoming update to
 * the conversation waiting for it, before any middleware runs.
 *
 * Layer: Lua bindings. The table of keys (src/conversation.c) belongs to
 * the host, not to a Lua state, so conversations of an old generation and
 * updates started in a new one meet in it across a hot reload.
 *
 * A conversation is a job (one update's handler) that called ctx:wait: it
 * owns one conversation key from its first wait until it ends, waits for
 * another key, or is cancelled. A key is a string whose first byte names
 * its namespace (lua/conversation.lua builds them): 'k' a key of the bot's
 * key function (by default "chat id:user id"), 'c' a chat, 'u' a user, 'b'
 * a user in a chat. An update has a key in each namespace it can (the
 * current generation's runtime.conversation_keys gives them, asked only
 * for the namespaces some conversation uses), tried most specific first
 * (b, k, u, c): a waiting conversation that does not want it passes it on
 * to the next key's; a running one holds it. So for the first key of an
 * update that has a conversation:
 *
 *   - the conversation waits: its offer function decides, in its own Lua
 *     state, whether the update is for it; if so the update is consumed
 *     (it starts no job: luaconv_route returns LUACONV_CONSUMED; for a
 *     durable conversation a receipt job, LUACONV_RECEIPT, see
 *     conv.receipt_wait) and the waiting handler resumes with its context
 *     (lua/conversation.lua then runs the answer through the middleware
 *     its own update went through); if not, it runs through the
 *     middleware as usual;
 *   - the conversation runs (between two waits): the update is held (it
 *     becomes a job whose handler first waits, without a slot, in
 *     conv.hold_wait) until the conversation waits again, which looks at
 *     the held updates in order first and consumes the first it wants (the
 *     others run through the middleware), or ends (all of them run). So
 *     nothing a user sends between two questions is lost or reordered.
 *
 * An update is routed again (conv.reroute) when its handler starts, if it
 * met no conversation when it was started (a conversation may have begun
 * waiting since: both were in one batch), and after it waited for its
 * sequentialize keys (the update holding them may have become the
 * conversation that waits for it).
 *
 * A waiting conversation holds nothing that others need: its job is parked
 * idle (no concurrency slot, no per-update timeout, not counted against
 * fetching; see job_park_idle) and its sequentialize keys are set aside
 * (luaseq_step_aside), so the updates of its chat run meanwhile (/cancel
 * among them) and cannot deadlock it. When its update comes it takes its
 * keys back (queueing behind whoever has them) and then a slot, and only
 * then resumes.
 *
 * The module tghost.conv (for lua/conversation.lua and lua/runtime.lua):
 *
 *   conv.wait(key, offer [, timeout]) -> kind, ...   may suspend
 *       key: a string or an integer. offer(update) -> ctx, matched | nil
 *       decides for one decoded update. Returns
 *         "held", json, serial   a held update to offer now: the caller
 *                                decides and calls conv.settle
 *         "update", ctx, matched an update offer took while it waited
 *         "timeout"              timeout seconds passed
 *         "cancelled", reason    "cancelled" (conv.cancel) or "replaced"
 *                                (another handler waits on the key now)
 *         "error", err           offer raised err for an incoming update
 *                                (that update ran through the middleware)
 *   conv.settle(serial, consumed)   consumed: the held update is the
 *       conversation's (its job ends); else it runs through the middleware
 *   conv.hold_wait() -> consumed    in a held update's job: waits until
 *       the conversation decided
 *   conv.reroute(key, ...) -> consumed   routes the running update (its
 *       keys, most specific first) again, as if it came now; may hold it
 *       (sequentialize calls it for an update that waited for its keys:
 *       its conversation may have started waiting meanwhile, so an answer
 *       that came before its question's ctx:wait still reaches the dialog)
 *   conv.active() -> bool           some conversation exists
 *   conv.namespaces() -> letters    the key namespaces conversations use
 *   conv.cancel(key, ...) -> bool   ends the conversation of the first key
 *       that has one: a waiting one resumes with "cancelled", a running one
 *       gets it at its next wait; updates held for it run through the
 *       middleware
 *   conv.stats() -> keys, waiting, held
 *
 * Durable conversations (lua/dialog.lua keeps their records):
 *
 *   conv.resume(key, update_id, update_json, fn, ...) -> bool   starts
 *       fn(...) as a job of this generation handling that update, owning
 *       key at once (updates of key are held for it); false if key has a
 *       conversation
 *   conv.receipt_wait()             in the job of an answer a durable
 *       conversation took (route "receipt"): waits, parked as a handoff
 *       (its slot goes, a graceful stop waits for it), until the
 *       conversation's record has it (conv.release_receipts, after each
 *       store) or the conversation ended; so the journal counts the
 *       answer done only once it is safe. conv.reroute does the same for
 *       an answer it routes (setting its sequentialize keys aside, which
 *       the conversation needs to go on) and then returns true
 *   conv.release_receipts()         the running conversation's record was
 *       stored
 *   conv.update_json() -> json|nil  the running job's update as it came
 *   conv.stale() -> bool            a reload replaced this code's
 *       generation
 *   conv.move()                     the running conversation goes on in
 *       the current generation (runtime.resume_dialog_key replays it);
 *       this job ends where it stands, its coroutines not closed; returns
 *       false if the current generation keeps no records, or in a cluster
 *       (see luaconv_move_durable)
 *
 * A second conversation on a key replaces the first (see "replaced"): the
 * user moved on (typed /register again, or another command that asks). */
#ifndef TGHOST_LUACONV_H
#define TGHOST_LUACONV_H

#include <lua.h>

struct script_env;
struct job;
struct generation;
struct update_item;
struct luaconv;
struct conv_hold;
struct conv_receipt;

enum luaconv_route {
  LUACONV_START,       /* no conversation of its key: start it as usual */
  LUACONV_OFFERED,     /* the waiting conversation of its key did not want
                          it: start it as usual */
  LUACONV_HOLD,        /* start it held (pass *hold to luaconv_hold) */
  LUACONV_CONSUMED,    /* a waiting conversation took it: start nothing */
  LUACONV_RECEIPT,     /* a waiting durable conversation took it: start it
                          as its receipt (pass *receipt to luaconv_receipt),
                          which ends once the conversation's record has it */
};

/* Creates the table (app/bindenv.c makes the one of struct script_env,
 * whose loop and scheduler it uses). */
struct luaconv *luaconv_new(struct script_env *env);
/* After every job has ended. */
void luaconv_free(struct luaconv *c);

/* Routes u, decoded on top of the stack of g's Lua state (left there),
 * before it starts in g (the current generation). Costs nothing while no
 * conversation exists. User code (the key function, a filter) runs
 * protected and within the CPU budget; its errors are logged (key) or go
 * to the waiting handler (filter). */
enum luaconv_route luaconv_route(struct luaconv *c, struct generation *g,
                                 const struct update_item *u,
                                 struct conv_hold **hold,
                                 struct conv_receipt **receipt);
/* The job started for a receipt (right after luaconv_route). */
void luaconv_receipt(struct luaconv *c, struct conv_receipt *r,
                     struct job *job);
/* The job started for a held update (right after luaconv_route). */
void luaconv_hold(struct luaconv *c, struct conv_hold *hold, struct job *job);
/* Every job started for a routed update (right after luaconv_route and
 * the above): if a waiting conversation passed it on, the updates of that
 * conversation's key that come after it are held until it first waits or
 * ends, so that a handler it starts (a command that asks again) gets the
 * answers typed after it, not the conversation it replaces. */
void luaconv_started(struct luaconv *c, struct job *job);

/* After a reload: each waiting durable conversation of an older
 * generation goes on in current, replayed from its record
 * (runtime.resume_dialog_key), if current keeps conversations in a
 * storage; the old job ends without closing its coroutines. Not in a
 * cluster: there the job's update stays unfinished in its partition's
 * record while the conversation waits, and resumes it at the partition's
 * next owner (so the conversation keeps its generation, as one without a
 * storage does). */
void luaconv_move_durable(struct luaconv *c, struct generation *current);

/* Logs, for each generation other than current that waiting
 * conversations keep alive, one line naming them (key, the script's line
 * of the wait, how long it has waited, when it times out). */
struct job_owner;
void luaconv_log_pinned(struct luaconv *c, const struct job_owner *current);

int luaopen_tghost_conv(lua_State *L);

#endif
