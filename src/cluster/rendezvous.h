/* Rendezvous (highest random weight) hashing: which live member owns a
 * partition. Every member computes the same answer from the same member
 * list, with no coordination; when a member joins or leaves, only the
 * partitions it wins or held move (about P/n of them), and none moves
 * between the members that stay.
 *
 * The weight of (member, partition) is a fixed 64-bit hash of the member
 * name and the partition number; the member with the highest weight owns
 * the partition (ties, which need a 64-bit collision, go to the smaller
 * name). Fixed, like the partition hash, because members of different
 * versions must agree.
 *
 * Layer: cluster (pure C). */
#ifndef TGHOST_RENDEZVOUS_H
#define TGHOST_RENDEZVOUS_H

#include <stddef.h>
#include <stdint.h>

/* The weight of member for partition. */
uint64_t rendezvous_weight(const char *member, size_t len, int partition);
/* The index in members[0..n) of partition's owner, or -1 when n is 0. */
int rendezvous_owner(const char *const *members, size_t n, int partition);

#endif
