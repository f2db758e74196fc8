/* The worker thread an SQLite backend runs its requests on, so that no
 * disk I/O happens on the event loop: what sqlstore.c (key-value) and
 * sqljobs.c (scheduled jobs) share.
 *
 * Layer: stores. Knows nothing of what a request is: the backend gives
 * the operations (how requests link, how a batch runs, how a result is
 * delivered) and a pointer of its own.
 *
 * The loop submits requests; the worker takes what queued up while it
 * was busy as one batch (at most SQLWORKER_BATCH_MAX, in submission
 * order) and runs it; finished batches go back through an eventfd the
 * loop watches, and the loop completes each request in order. The worker
 * blocks every signal (they belong to the loop's thread). Stopping runs
 * what is still queued before the thread ends.
 *
 * sqlworker_open_db opens a database file as every backend does: WAL
 * journal, synchronous=NORMAL, a 5 s busy timeout so several processes
 * can share the file. */
#ifndef TGHOST_SQLWORKER_H
#define TGHOST_SQLWORKER_H

#include <stdbool.h>

#include <event2/event.h>
#include <sqlite3.h>

#define SQLWORKER_BATCH_MAX 512

struct sqlworker;

struct sqlworker_ops {
  /* The requests' link: a batch is a list ended by NULL. */
  void *(*next)(void *req);
  void (*set_next)(void *req, void *next);
  /* On the worker thread: once at its start (may be NULL), for every
   * batch, and once before it ends (closing the database). */
  void (*started)(void *owner);
  void (*run_batch)(void *owner, void *batch);
  void (*stopped)(void *owner);
  /* On the loop: a finished request, handed back; a finished request
   * never handed back (sqlworker_stop), to free. */
  void (*complete)(void *req);
  void (*discard)(void *req);
};

/* Starts the worker; NULL with the reason (strerror's, malloc'd) in
 * *err. */
struct sqlworker *sqlworker_start(struct event_base *base,
                                  const struct sqlworker_ops *ops,
                                  void *owner, char **err);
/* Queues a request for the worker; from the loop. */
void sqlworker_submit(struct sqlworker *w, void *req);
/* Lets the worker run what is queued, joins it, and frees the worker and
 * the finished requests not handed back yet. */
void sqlworker_stop(struct sqlworker *w);

/* Opens (creating) the file at path into *db; false with SQLite's reason
 * (malloc'd) in *why and *db NULL. */
bool sqlworker_open_db(const char *path, sqlite3 **db, char **why);

#endif
