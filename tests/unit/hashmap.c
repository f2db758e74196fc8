/* Unit tests of the seeded hash table (src/base/hashmap.c): a randomized
 * property test against a brute-force model, over keys chosen to collide
 * in every way that matters (the same bytes under two kinds, the empty
 * key, binary keys with NULs, keys that differ only in their last byte or
 * past the first eight), and checks that the seed is what decides where
 * keys land.
 *
 *   - find returns the node inserted under exactly that key (kind and
 *     bytes), or NULL; a node's key reads back as inserted;
 *   - iteration visits every node present exactly once;
 *   - a sweep, a few buckets at a time, removes exactly the nodes it is
 *     told to, and a full round of it reaches every node;
 *   - the load stays at most 1 and the bucket array follows the keys
 *     present: none once the map is empty;
 *   - two seeds spread the same keys differently, and 100,000 sequential
 *     integer keys leave no long chain.
 *
 * TGHOST_HASHMAP_SEED=<n> replays one schedule. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hashmap.h"

static uint64_t current_seed;
#define CHECK_ON_FAILURE() \
  fprintf(stderr, "  (schedule seed %" PRIu64 ")\n", current_seed)
#include "check.h"
#include "rng.h"
#include "testreg.h"

#define UNIVERSE 240

struct ukey {
  uint8_t kind;
  char bytes[48];
  size_t len;
};
static struct ukey universe[UNIVERSE];

static void make_universe(void) {
  for (int i = 0; i < UNIVERSE; i++) {
    struct ukey *k = &universe[i];
    switch (i % 6) {
      case 0: {    /* an integer's 8 bytes, kind 2 */
        int64_t v = (int64_t)(i / 6) * (i % 4 ? -1 : 1) * 1000000007LL;
        k->kind = 2;
        memcpy(k->bytes, &v, 8);
        k->len = 8;
        break;
      }
      case 1:      /* the same 8 bytes as the one before, kind 1 */
        *k = universe[i - 1];
        k->kind = 1;
        break;
      case 2:      /* binary, with NULs; the empty key once */
        k->kind = 1;
        k->len = i == 2 ? 0 : 5;
        memcpy(k->bytes, "b\0\0\xff", 4);
        k->bytes[4] = (char)i;
        break;
      case 3:      /* long, differing only in the last byte */
        k->kind = 1;
        k->len = (size_t)snprintf(k->bytes, sizeof k->bytes,
                                  "a key that is longer than forty%03d", i);
        break;
      case 4:      /* differing only past the first eight bytes */
        k->kind = 1;
        k->len = (size_t)snprintf(k->bytes, sizeof k->bytes, "12345678%c",
                                  'a' + i % 26);
        break;
      default:     /* chat ids as text, under kind 0 */
        k->kind = 0;
        k->len = (size_t)snprintf(k->bytes, sizeof k->bytes, "-100%d", i);
        break;
    }
  }
}

static bool same_key(const struct ukey *a, const struct ukey *b) {
  return a->kind == b->kind && a->len == b->len &&
         memcmp(a->bytes, b->bytes, a->len) == 0;
}

/* Universe entries that are the same key share the first one's index. */
static int canon[UNIVERSE];
static void make_canon(void) {
  for (int i = 0; i < UNIVERSE; i++) {
    canon[i] = i;
    for (int j = 0; j < i; j++)
      if (same_key(&universe[j], &universe[i])) {
        canon[i] = j;
        break;
      }
  }
}

struct record {
  struct hashmap_node node;
  int key;                      /* canonical universe index */
  bool doomed;                  /* the sweep is to remove it */
  char copy[48];                /* the record's own copy of the key */
};

static struct record *present[UNIVERSE];   /* by canonical index */

static struct hashmap_key key_of(const struct hashmap *m, int i) {
  return hashmap_key(m, universe[i].kind, universe[i].bytes, universe[i].len);
}

static void check_all(const struct hashmap *m) {
  size_t n = 0;
  for (int i = 0; i < UNIVERSE; i++) {
    int c = canon[i];
    struct hashmap_key k = key_of(m, i);
    struct hashmap_node *found = hashmap_find(m, &k);
    struct record *want = present[c];
    CHECK(found == (want ? &want->node : NULL),
          "key %d: found %p, the model says %p", i, (void *)found,
          (void *)(want ? &want->node : NULL));
    if (want) {
      struct ukey back = {found->kind, {0}, found->len};
      memcpy(back.bytes, found->key, found->len);
      CHECK(same_key(&back, &universe[c]), "key %d does not read back", c);
    }
    if (c == i && want) n++;
  }
  CHECK(hashmap_count(m) == n, "count %zu, model %zu", hashmap_count(m), n);
  /* Iteration: each present node once. */
  int seen[UNIVERSE] = {0};
  size_t visited = 0, b;
  for (struct hashmap_node *h = hashmap_first(m, &b); h;
       h = hashmap_next(m, h, &b)) {
    struct record *r = hashmap_entry(h, struct record, node);
    CHECK(present[r->key] == r, "iteration met a node not in the map");
    seen[r->key]++;
    visited++;
  }
  CHECK(visited == n, "iteration visited %zu nodes of %zu", visited, n);
  for (int i = 0; i < UNIVERSE; i++)
    CHECK(seen[i] <= 1, "iteration visited key %d %d times", i, seen[i]);
  /* The load, and the array following the keys. */
  size_t buckets = hashmap_memory(m) / sizeof(struct hashmap_node *);
  CHECK(n <= buckets, "%zu keys in %zu buckets", n, buckets);
  CHECK(n > 0 || buckets == 0, "an empty map keeps %zu buckets", buckets);
  CHECK(buckets <= 16 || n >= buckets / 16,
        "%zu buckets for %zu keys: the map did not shrink", buckets, n);
}

static void insert(struct hashmap *m, int c) {
  struct record *r = calloc(1, sizeof *r);
  r->key = c;
  memcpy(r->copy, universe[c].bytes, universe[c].len);
  struct hashmap_key k = key_of(m, c);
  hashmap_insert(m, &r->node, &k, r->copy);
  present[c] = r;
}

static void remove_key(struct hashmap *m, int c) {
  hashmap_remove(m, &present[c]->node);
  free(present[c]);
  present[c] = NULL;
}

static bool drop_doomed(struct hashmap_node *n, void *ud) {
  struct record *r = hashmap_entry(n, struct record, node);
  if (!r->doomed) return false;
  present[r->key] = NULL;
  (*(size_t *)ud)++;
  free(r);
  return true;
}

/* Dooms some keys (or all of them), then sweeps a few buckets at a time
 * until a whole round has passed: all the doomed are gone, nobody else. */
static void sweep_round(struct hashmap *m, size_t *cursor) {
  size_t doomed = 0, dropped = 0;
  unsigned odds = rnd_below(4) == 0 ? 1 : 3;
  for (int i = 0; i < UNIVERSE; i++)
    if (present[i] && rnd_below(odds) == 0) {
      present[i]->doomed = true;
      doomed++;
    }
  size_t step = 1 + rnd_below(4);
  size_t round = hashmap_memory(m) / sizeof(struct hashmap_node *);
  /* A round over the array as it was; it only shrinks meanwhile. */
  for (size_t done = 0; done < round; done += step) {
    hashmap_sweep(m, cursor, step, drop_doomed, &dropped);
    check_all(m);
  }
  CHECK(dropped == doomed, "the sweep removed %zu of %zu doomed keys",
        dropped, doomed);
}

static void run_schedule(uint64_t seed) {
  current_seed = seed;
  rng_state = seed * 0x9e3779b97f4a7c15ULL + 1;
  struct hashmap m;
  hashmap_init(&m, seed);
  memset(present, 0, sizeof present);
  size_t cursor = 0;
  int steps = 100 + (int)rnd_below(600);
  unsigned insert_weight = 1 + rnd_below(4);
  for (int s = 0; s < steps; s++) {
    /* Looked up and inserted under a look-alike spelling of the key. */
    int c = canon[rnd_below(UNIVERSE)];
    if (rnd_below(insert_weight + 1) < insert_weight) {
      if (!present[c]) insert(&m, c);
    } else if (present[c]) {
      remove_key(&m, c);
    }
    if (s % 7 == 0) check_all(&m);
    if (s % 97 == 96) sweep_round(&m, &cursor);
  }
  check_all(&m);
  for (int i = 0; i < UNIVERSE; i++)
    if (present[i]) remove_key(&m, i);
  check_all(&m);
  hashmap_free(&m);
}

static size_t longest_chain(const struct hashmap *m) {
  size_t longest = 0, run = 0, b, last = (size_t)-1;
  for (struct hashmap_node *h = hashmap_first(m, &b); h;
       h = hashmap_next(m, h, &b)) {
    run = b == last ? run + 1 : 1;
    last = b;
    if (run > longest) longest = run;
  }
  return longest;
}

/* Where keys land depends on the seed, and sequential integer keys (chat
 * ids) spread out. */
static void test_seed_spreads(void) {
  enum { N = 100000 };
  struct record *rs = calloc(N, sizeof *rs);
  size_t orders_differ = 0;
  int first[2] = {-1, -1};
  for (int s = 0; s < 2; s++) {
    struct hashmap m;
    hashmap_init(&m, 1000 + (uint64_t)s);
    for (int i = 0; i < N; i++) {
      int64_t id = -1001234567890LL - i;
      memcpy(rs[i].copy, &id, 8);
      struct hashmap_key k = hashmap_key(&m, 2, rs[i].copy, 8);
      hashmap_insert(&m, &rs[i].node, &k, rs[i].copy);
    }
    size_t longest = longest_chain(&m);
    CHECK(longest <= 12, "seed %d: a chain of %zu of %d sequential keys", s,
          longest, N);
    size_t b;
    struct hashmap_node *h = hashmap_first(&m, &b);
    first[s] = (int)(hashmap_entry(h, struct record, node) - rs);
    for (int i = 0; i < N; i++) hashmap_remove(&m, &rs[i].node);
    CHECK(hashmap_memory(&m) == 0, "%zu bytes left", hashmap_memory(&m));
    hashmap_free(&m);
  }
  if (first[0] != first[1]) orders_differ++;
  CHECK(orders_differ, "two seeds put the same key first (%d)", first[0]);
  free(rs);
}

TEST(property) {
  make_universe();
  make_canon();
  test_seed_spreads();
  const char *one = getenv("TGHOST_HASHMAP_SEED");
  if (one) {
    run_schedule(strtoull(one, NULL, 10));
    return;
  }
  for (uint64_t i = 1; i <= 1000; i++) run_schedule(i);
  fprintf(stderr, "1000 random schedules passed\n");
}
