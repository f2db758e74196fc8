/* A key-value store in an SQLite database file, whose disk I/O never runs
 * on the event loop: tghost.storage.sqlite(path [, table]).
 *
 * Layer: loop and HTTP (beside src/http.h: it delivers results to the
 * loop; it knows nothing of Lua or tasks). Requests are src/kvreq.h's.
 *
 * One worker thread per database file owns the connection: it opens the
 * file (WAL journal, synchronous=NORMAL, a 5 s busy timeout so several
 * processes can share it), creates each table on first use (key TEXT
 * PRIMARY KEY, value TEXT, expires INTEGER: Unix time in ms, NULL for
 * never) and runs requests with prepared statements, in submission order.
 * Requests that queue up while it works are run as one batch (at most
 * 512), their writes in one transaction, so a burst of writes costs one
 * commit. Results are handed back after the commit: a write is reported
 * done once committed (it survives a crash of the process; of the machine,
 * from the next WAL checkpoint on), and a read never reports data that
 * could still be rolled back. Expired rows read as absent and are deleted
 * every 1,000 writes or minute per table.
 *
 * Results come back through an eventfd watched by the loop, which
 * completes the requests (kvreq_complete) on the loop thread. A database
 * that cannot be opened fails every request with SQLite's reason; the
 * worker tries again on the next request. */
#ifndef TGHOST_SQLSTORE_H
#define TGHOST_SQLSTORE_H

#include <stdbool.h>

#include <event2/event.h>

#include "store/kvreq.h"

struct sqlstore;

/* Starts the worker for path (the file is opened by the worker, not
 * here). Returns NULL, with err set, only if no thread or eventfd can be
 * had. */
struct sqlstore *sqlstore_new(struct event_base *base, const char *path,
                              char **err);

/* Queues req (whose ns is a table name that sqlstore_valid_table
 * accepted); the store owns it until it completes. */
void sqlstore_submit(struct sqlstore *s, struct kvreq *req);

/* Lets the worker finish the requests queued so far (their writes are
 * committed), closes the database and joins the thread: this blocks, so it
 * is for teardown, after the loop has stopped. Requests still owned by the
 * store are freed without being completed. */
void sqlstore_free(struct sqlstore *s);

/* Whether name can be a table: an identifier of at most 64 characters
 * ([A-Za-z_][A-Za-z0-9_]*) that does not start with "sqlite_". */
bool sqlstore_valid_table(const char *name);

#endif
