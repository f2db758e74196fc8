/* The write fence of an update a cluster partition delivered: storage
 * writes made while its handler runs carry it, so that a process that lost
 * the partition (paused past its lease, cut off from Redis) cannot write
 * over what the partition's next owner wrote (store/kvreq.h, struct
 * kv_fence; src/cluster/cluster.h).
 *
 * The source puts the fence on the update_item (update.h); the layer that
 * starts the update's job moves it onto the job with update_fence_attach,
 * and a storage binding finds it there with update_fence_of. A job without
 * one (one process, no cluster) writes unfenced.
 *
 * Layer: pipeline. */
#ifndef TGHOST_FENCE_H
#define TGHOST_FENCE_H

#include "sched/task.h"
#include "store/kvreq.h"

/* Takes fence (malloc'd) over: it lives as long as the job. */
void update_fence_attach(struct job *job, struct kv_fence *fence);
/* The job's fence, or NULL. */
const struct kv_fence *update_fence_of(const struct job *job);

#endif
