/* The Lua bindings' view of the process (struct script_env,
 * script/scriptenv.h), made from the host: its loop, scheduler, clients
 * and stores, the command line's flags, the bot (the host's runner and
 * getMe's answer) behind script_host_ops, and the bindings' state that
 * outlives reloads (sequentialize's keys, conversations, the finalizer
 * queue), which this module makes and frees. It writes every field of the
 * struct, once; nothing else does.
 *
 * Layer: app (it sees the host below and the bindings' types). */
#ifndef TGHOST_BINDENV_H
#define TGHOST_BINDENV_H

#include <stdint.h>

#include "app/host.h"
#include "script/scriptenv.h"

/* Fills env from h (which must outlive it; its job scheduler made
 * already, host_init_jobs). on_unhandled (NULL: nobody
 * asks) hears of updates no handler took (the sandbox). */
void bindenv_init(struct script_env *env, struct host *h,
                  void (*on_unhandled)(void *ud, int64_t update_id,
                                       const char *type),
                  void *on_unhandled_ud);
/* Frees the bindings' state: after every job has ended, before the host
 * is freed. */
void bindenv_free(struct script_env *env);

#endif
