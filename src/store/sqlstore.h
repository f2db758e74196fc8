/* A key-value store in an SQLite database file, whose disk I/O never runs
 * on the event loop: tghost.storage.sqlite(path [, table]).
 *
 * Layer: stores. Implements src/store/kvstore.h (the SQLite backend:
 * target a file path, namespace a table); it delivers results to the loop
 * and knows nothing of Lua or tasks.
 *
 * One worker thread per database file owns the connection: it opens the
 * file (WAL journal, synchronous=NORMAL, a 5 s busy timeout so several
 * processes can share it), creates each table on first use (key TEXT
 * PRIMARY KEY, value TEXT, expires INTEGER: Unix time in ms, NULL for
 * never) and runs requests with prepared statements, in submission order.
 * Compare-and-set is one statement (an UPDATE or DELETE that also matches
 * the expected value, or an INSERT ... ON CONFLICT DO UPDATE that only
 * replaces an expired row), so it is atomic against other processes
 * sharing the file too. Listing reads the primary key's index in byte
 * order, from the prefix (or the cursor, the last key of the previous
 * page) to the end of the prefix.
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
 * worker tries again on the next request. Messages name the store as
 * sqlite storage "PATH" (table T). */
#ifndef TGHOST_SQLSTORE_H
#define TGHOST_SQLSTORE_H

#include <stdbool.h>

#include "store/kvstore.h"

extern const struct kv_backend sqlstore_backend;

/* Whether name can be a table: an identifier of at most 64 characters
 * ([A-Za-z_][A-Za-z0-9_]*) that does not start with "sqlite_". */
bool sqlstore_valid_table(const char *name);

#endif
