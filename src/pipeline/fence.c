#include "pipeline/fence.h"

#include <stddef.h>
#include <stdlib.h>

struct fence_tag {
  struct job_cleanup cleanup;
  struct kv_fence *fence;
};

static void on_job_end(struct job *job, struct job_cleanup *c) {
  (void)job;
  struct fence_tag *t = (struct fence_tag *)c;
  free(t->fence);
  free(t);
}

void update_fence_attach(struct job *job, struct kv_fence *fence) {
  struct fence_tag *t = xcalloc(1, sizeof *t);
  t->cleanup.fn = on_job_end;
  t->fence = fence;
  job_add_cleanup(job, &t->cleanup);
}

const struct kv_fence *update_fence_of(const struct job *job) {
  struct job_cleanup *c = job ? job_find_cleanup(job, on_job_end) : NULL;
  return c ? ((struct fence_tag *)c)->fence : NULL;
}
