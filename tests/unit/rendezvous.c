/* Rendezvous hashing (src/cluster/rendezvous.c): randomized property test
 * against its definition. For random member sets:
 *
 *   - the owner is the member of highest weight (brute force), the same
 *     whatever order the members are listed in;
 *   - when a member joins, only partitions that it now owns move; when
 *     one leaves, only the partitions it owned move;
 *   - partitions spread over members (no member gets more than twice its
 *     share of 64 partitions among 3, averaged over many sets).
 *
 * TGHOST_RENDEZVOUS_SEED=<n> replays one schedule. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/rendezvous.h"

static uint64_t current_seed;
#define CHECK_ON_FAILURE() \
  fprintf(stderr, "  (seed %" PRIu64 ")\n", current_seed)
#include "check.h"
#include "testreg.h"

static uint64_t rng_state;
static uint64_t rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dULL;
}

enum { P = 64, MAXM = 12 };

static char names[MAXM + 1][40];
static const char *members[MAXM + 1];

static void make_members(size_t n) {
  for (size_t i = 0; i < n; i++) {
    snprintf(names[i], sizeof names[i], "host%u:%u:%06x",
             (unsigned)(rnd() % 5), (unsigned)(rnd() % 100000),
             (unsigned)(rnd() & 0xffffff));
    members[i] = names[i];
  }
}

TEST(owner_properties) {
  const char *s = getenv("TGHOST_RENDEZVOUS_SEED");
  current_seed = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL);
  rng_state = current_seed * 2654435761u + 1;
  long share[3] = {0};
  for (int round = 0; round < 300; round++) {
    size_t n = 1 + rnd() % MAXM;
    make_members(n);
    int owner[P];
    for (int p = 0; p < P; p++) {
      owner[p] = rendezvous_owner(members, n, p);
      /* Brute force: the highest weight. */
      uint64_t best = 0;
      int want = -1;
      for (size_t i = 0; i < n; i++) {
        uint64_t w = rendezvous_weight(members[i], strlen(members[i]), p);
        if (want < 0 || w > best) best = w, want = (int)i;
      }
      CHECK(owner[p] == want, "partition %d: owner %d, highest weight %d", p,
            owner[p], want);
    }
    /* Listing order does not matter. */
    const char *shuffled[MAXM];
    memcpy(shuffled, members, n * sizeof *members);
    for (size_t i = n; i > 1; i--) {
      size_t j = rnd() % i;
      const char *t = shuffled[i - 1];
      shuffled[i - 1] = shuffled[j];
      shuffled[j] = t;
    }
    for (int p = 0; p < P; p++) {
      int o = rendezvous_owner(shuffled, n, p);
      CHECK(strcmp(shuffled[o], members[owner[p]]) == 0,
            "partition %d changed owner when the list was reordered", p);
    }
    /* A member joins: only partitions it wins move. */
    snprintf(names[n], sizeof names[n], "joiner%u", (unsigned)rnd());
    members[n] = names[n];
    for (int p = 0; p < P; p++) {
      int o = rendezvous_owner(members, n + 1, p);
      CHECK(o == owner[p] || o == (int)n,
            "partition %d moved between members that stayed", p);
    }
    /* A member leaves: only its partitions move. */
    if (n > 1) {
      size_t gone = rnd() % n;
      const char *left[MAXM];
      size_t m = 0;
      for (size_t i = 0; i < n; i++)
        if (i != gone) left[m++] = members[i];
      for (int p = 0; p < P; p++) {
        int o = rendezvous_owner(left, m, p);
        if (owner[p] != (int)gone)
          CHECK(strcmp(left[o], members[owner[p]]) == 0,
                "partition %d moved though its owner stayed", p);
      }
    }
    if (round < 100) {
      make_members(3);
      for (int p = 0; p < P; p++) share[rendezvous_owner(members, 3, p)]++;
    }
  }
  for (int i = 0; i < 3; i++)
    CHECK(share[i] > 100 * P / 3 / 2 && share[i] < 100 * P / 3 * 2,
          "member %d owned %ld of %d partitions over 100 sets", i, share[i],
          100 * P);
  CHECK(rendezvous_owner(members, 0, 0) == -1, "no member, no owner");
}
