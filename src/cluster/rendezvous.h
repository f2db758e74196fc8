/* Rendezvous (highest random weight) hashing with bounded loads: which
 * live member owns each partition. Every member computes the same answer
 * from the same member set, in whatever order it is listed, with no
 * coordination.
 *
 * The weight of (member, partition) is a fixed 64-bit hash of the member
 * name and the partition number. The (member, partition) pairs are taken
 * heaviest first, and each goes to its member unless the partition has
 * an owner already or the member owns its cap, ceil(partitions / n). So
 * no member owns more than its cap (plain rendezvous hashing gave one of
 * two members 41 of 64 partitions, and the busiest member bounds what a
 * cluster does), and a member joining or leaving still moves about its
 * share (on average 1.15 times it, at most about twice, where plain
 * rendezvous moves exactly its share). Ties, which need a 64-bit
 * collision, go to the smaller name. Fixed, like the partition hash,
 * because members of different versions must agree.
 *
 * Layer: cluster (pure C). */
#ifndef TGHOST_RENDEZVOUS_H
#define TGHOST_RENDEZVOUS_H

#include <stddef.h>
#include <stdint.h>

/* The weight of member for partition. */
uint64_t rendezvous_weight(const char *member, size_t len, int partition);
/* owner[p] for p in [0, partitions): the index in members[0..n) of its
 * owner, or -1 for every p when n is 0. */
void rendezvous_assign(const char *const *members, size_t n, int partitions,
                       int *owner);

#endif
