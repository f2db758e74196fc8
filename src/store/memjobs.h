/* Scheduled jobs kept in the process's memory: what tghost.jobs uses
 * without a storage, and with tghost.storage.memory(). They outlive hot
 * reloads (the scheduler that holds them belongs to the process) but not
 * the process.
 *
 * Layer: stores. Implements store/jobstore.h for the "memory" kind: a
 * hash table of records by id, a binary heap of unclaimed ones by due
 * time and one of claimed ones by lease end, so a claim costs O(k log n)
 * for k records and a put or finish O(log n). Listing walks every record
 * (O(n log n) with the sort by id). Requests complete from the loop, one
 * event per batch. */
#ifndef TGHOST_MEMJOBS_H
#define TGHOST_MEMJOBS_H

#include "store/jobstore.h"

extern const struct jobstore_backend memjobs_backend;

#endif
