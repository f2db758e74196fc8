/* Child processes on the event loop: started without a shell, their
 * stdin, stdout and stderr pipes watched by libevent, reaped when SIGCHLD
 * says so (the loop hears of it; nothing ever waits). One table per
 * process.
 *
 * A child runs in a process group of its own, with the default signal
 * dispositions and mask, and none of tghost's other file descriptors
 * (sockets, the journal, inotify) open. Its environment is tghost's, less
 * any variable that holds a secret the log redactor knows (the bot
 * token), with the caller's additions.
 *
 * Output is held up to a window per stream; past it the pipe is no longer
 * read until the owner consumes, so a child that writes faster than the
 * script reads blocks on its pipe instead of filling tghost's memory.
 * Input is written as the pipe takes it.
 *
 * Notifications (output came, stdin drained, the child exited) go to the
 * owner's callback from the loop. When the owner lets go of a child that
 * still runs (child_release), the child's group is sent SIGTERM, then
 * SIGKILL after CHILD_KILL_GRACE_MS; the table reaps it either way, so no
 * child becomes a zombie. Freeing the table kills and reaps all. */
#ifndef TGHOST_CHILD_H
#define TGHOST_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <event2/event.h>

#include "base/buf.h"

#define CHILD_KILL_GRACE_MS 1000

struct child_table;
struct child;

enum child_stream { CHILD_STDOUT = 0, CHILD_STDERR = 1 };

typedef void (*child_notify_fn)(struct child *c, void *ud);

struct child_spec {
  const char *const *argv;       /* argv[0] is looked up in PATH */
  const char *const *env_add;    /* "NAME=value" set, "NAME" removed; or NULL */
  const char *cwd;               /* or NULL */
  size_t window;                 /* per output stream (0: 64 KiB) */
};

/* NULL (after logging why) if SIGCHLD cannot be watched. */
struct child_table *child_table_new(struct event_base *base);
/* Kills (SIGKILL, whole groups) and reaps every child still there. */
void child_table_free(struct child_table *t);
/* Children started and not yet reaped (released ones included). */
size_t child_table_count(const struct child_table *t);

/* Starts a child. NULL with err set when it cannot be started (no such
 * program, too many processes). */
struct child *child_spawn(struct child_table *t, const struct child_spec *spec,
                          child_notify_fn notify, void *ud, struct buf *err);
pid_t child_pid(const struct child *c);

/* Output received and not consumed: *data points at the bytes. */
size_t child_peek(const struct child *c, enum child_stream s,
                  const char **data);
void child_consume(struct child *c, enum child_stream s, size_t n);
/* The stream reached its end and everything in it was consumed. */
bool child_drained(const struct child *c, enum child_stream s);

/* Queues bytes for stdin. Returns 0, or -1 once stdin is closed (the
 * child closed its end, or child_close_stdin was called). */
int child_write(struct child *c, const char *data, size_t len);
/* Bytes queued for stdin and not yet taken by the pipe. */
size_t child_stdin_pending(const struct child *c);
/* Closes stdin once what is queued has been written. */
void child_close_stdin(struct child *c);

/* The child has been reaped; its wait status (waitpid's). */
bool child_exited(const struct child *c);
int child_wait_status(const struct child *c);
/* Sends sig to the child's process group (if it still runs). */
void child_kill(struct child *c, int sig);
/* The owner is done with it: no more notifications; pipes closed; a
 * running child is killed (SIGTERM, then SIGKILL) and reaped later. */
void child_release(struct child *c);

#endif
