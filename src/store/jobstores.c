#include "store/jobstores.h"

#include <string.h>

#include "store/memjobs.h"
#include "store/redisjobs.h"
#include "store/sqljobs.h"

static const struct jobstore_backend *const backends[] = {
    &memjobs_backend,
    &sqljobs_backend,
    &redisjobs_backend,
};

const struct jobstore_backend *jobstore_backend(const char *kind) {
  for (size_t i = 0; i < sizeof backends / sizeof *backends; i++)
    if (strcmp(backends[i]->kind, kind) == 0) return backends[i];
  return NULL;
}
