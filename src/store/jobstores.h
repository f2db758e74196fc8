/* The job stores, registered once: which storage kinds can keep scheduled
 * jobs, and the backend for each (store/jobstore.h). Adding one is its
 * module and a line in jobstores.c.
 *
 * Layer: stores. */
#ifndef TGHOST_JOBSTORES_H
#define TGHOST_JOBSTORES_H

#include "store/jobstore.h"

/* The backend serving storages of that kind ("memory", "sqlite",
 * "redis"), or NULL: that kind keeps no jobs. */
const struct jobstore_backend *jobstore_backend(const char *kind);

#endif
