/* Scheduled jobs in an SQLite database file: what tghost.jobs uses with
 * run{ jobs = { storage = tghost.storage.sqlite(path [, table]) } }. They
 * survive restarts, and several processes may share the file: every claim
 * is one IMMEDIATE transaction, so a due job goes to one of them.
 *
 * Layer: stores. Implements store/jobstore.h for the "sqlite" kind. The
 * jobs live in the table "<table>_jobs" (kv_jobs by default) beside the
 * storage's own table:
 *
 *   id TEXT PRIMARY KEY, schedule TEXT, due INTEGER (Unix ms),
 *   body BLOB, attempts INTEGER, token TEXT (NULL: not claimed),
 *   lease INTEGER (the claim's end, Unix ms)
 *
 * with partial indexes on due (unclaimed rows) and lease (claimed ones),
 * so a claim reads only what is due; new ids count in "<table>_jobs_seq".
 * A worker thread of its own owns the connection (WAL, synchronous=NORMAL,
 * a 5 s busy timeout, as the key-value store's); requests that queue up
 * while it works run as one batch in one transaction, each inside a
 * savepoint so one failing request fails alone, and are handed back to the
 * loop after the commit (a job reported scheduled is committed). */
#ifndef TGHOST_SQLJOBS_H
#define TGHOST_SQLJOBS_H

#include "store/jobstore.h"

extern const struct jobstore_backend sqljobs_backend;

#endif
