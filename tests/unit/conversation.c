/* Unit tests of the conversation table (src/conversation.c): a randomized
 * property test against a brute-force model, with keys chosen to collide
 * in every way that matters (an integer and the string of its digits, long
 * keys stored outside the node, keys that differ in one byte past the
 * first eight, the empty string), and a burst that checks the table gives
 * its memory back.
 *
 *   - find returns the node inserted under exactly that key, or NULL;
 *   - a node's key reads back as inserted;
 *   - count and memory follow the keys present; the table is empty (no
 *     buckets) once every key is removed.
 *
 * TGHOST_CONVMAP_SEED=<n> replays one schedule. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/conversation.h"

static uint64_t current_seed;
#define CHECK_ON_FAILURE() \
  fprintf(stderr, "  (schedule seed %" PRIu64 ")\n", current_seed)
#include "check.h"
#include "testreg.h"

static uint64_t rng_state;
static uint64_t rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dULL;
}
static unsigned rnd_below(unsigned n) { return (unsigned)(rnd() % n); }

#define UNIVERSE 200
static char texts[UNIVERSE][80];
static struct convmap_key universe[UNIVERSE];

static void make_universe(void) {
  for (int i = 0; i < UNIVERSE; i++) {
    struct convmap_key *k = &universe[i];
    memset(k, 0, sizeof *k);
    switch (i % 5) {
      case 0:
        k->type = CONVMAP_INTEGER;
        k->num = (int64_t)(i / 5) * (i % 2 ? -1 : 1) * 1000000007LL;
        break;
      case 1:      /* the digits of the integer before it */
        snprintf(texts[i], sizeof texts[i], "%" PRId64,
                 universe[i - 1].num);
        break;
      case 2:      /* chat:user, as the default key function makes */
        snprintf(texts[i], sizeof texts[i], "-100%d:%d", i, i * 7);
        break;
      case 3:      /* longer than the node keeps inline */
        snprintf(texts[i], sizeof texts[i],
                 "a conversation key that is too long to be inline #%d", i);
        break;
      default:     /* differ only past the first eight bytes */
        snprintf(texts[i], sizeof texts[i], "12345678%c", 'a' + i % 26);
        if (i == 4) texts[i][0] = '\0';   /* the empty string */
        break;
    }
    if (k->type != CONVMAP_INTEGER) {
      k->type = CONVMAP_STRING;
      k->str = texts[i];
      k->len = strlen(texts[i]);
    }
  }
}

static bool same_key(const struct convmap_key *a, const struct convmap_key *b) {
  if (a->type != b->type) return false;
  if (a->type == CONVMAP_INTEGER) return a->num == b->num;
  return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
}

/* Universe entries that are the same key (the 'differ past eight bytes'
 * family repeats every 26 letters) share the first one's index. */
static int canon[UNIVERSE];
static void make_canon(void) {
  for (int i = 0; i < UNIVERSE; i++) {
    canon[i] = i;
    for (int j = 0; j < i; j++) {
      if (same_key(&universe[j], &universe[i])) {
        canon[i] = j;
        break;
      }
    }
  }
}
static int canonical(int i) { return canon[i]; }

struct record {
  struct convmap_node node;
  int key;                      /* canonical universe index */
};

static struct record *present[UNIVERSE];   /* by canonical index */

static void check_all(const struct convmap *m) {
  size_t n = 0;
  for (int i = 0; i < UNIVERSE; i++) {
    int c = canonical(i);
    struct convmap_node *found = convmap_find(m, &universe[i]);
    struct record *want = present[c];
    CHECK(found == (want ? &want->node : NULL),
          "key %d: found %p, the model says %p", i, (void *)found,
          (void *)(want ? &want->node : NULL));
    if (want) {
      struct convmap_key k = convmap_node_key(&want->node);
      CHECK(same_key(&k, &universe[c]), "key %d does not read back", c);
    }
    if (c == i && want) n++;
  }
  CHECK(convmap_count(m) == n, "count %zu, model %zu", convmap_count(m), n);
}

static void run_schedule(uint64_t seed) {
  current_seed = seed;
  rng_state = seed * 0x9e3779b97f4a7c15ULL + 1;
  struct convmap m;
  convmap_init(&m, seed);
  memset(present, 0, sizeof present);
  int steps = 100 + (int)rnd_below(400);
  unsigned insert_weight = 1 + rnd_below(4);
  for (int s = 0; s < steps; s++) {
    int c = canonical((int)rnd_below(UNIVERSE));
    if (rnd_below(insert_weight + 1) < insert_weight) {
      if (present[c]) continue;
      struct record *r = calloc(1, sizeof *r);
      r->key = c;
      /* Inserted under a look-alike spelling of the same key. */
      convmap_insert(&m, &r->node, &universe[c]);
      present[c] = r;
    } else if (present[c]) {
      convmap_remove(&m, &present[c]->node);
      free(present[c]);
      present[c] = NULL;
    }
    if (s % 7 == 0) check_all(&m);
  }
  check_all(&m);
  for (int i = 0; i < UNIVERSE; i++) {
    if (!present[i]) continue;
    convmap_remove(&m, &present[i]->node);
    free(present[i]);
    present[i] = NULL;
  }
  check_all(&m);
  CHECK(convmap_memory(&m) == 0 && hashmap_memory(&m.map) == 0,
        "%zu bytes left in an empty table", convmap_memory(&m));
  convmap_free(&m);
}

/* 10,000 dialogs at once, then none: the table grows and gives it back. */
static void test_burst(void) {
  enum { N = 10000 };
  struct convmap m;
  convmap_init(&m, 7);
  struct record *rs = calloc(N, sizeof *rs);
  char text[32];
  for (int i = 0; i < N; i++) {
    snprintf(text, sizeof text, "%d:%d", 100000 + i, 100000 + i);
    struct convmap_key k = {CONVMAP_STRING, text, strlen(text), 0};
    CHECK(!convmap_find(&m, &k), "key %d present before insert", i);
    convmap_insert(&m, &rs[i].node, &k);
  }
  size_t full = convmap_memory(&m);
  for (int i = 0; i < N; i++) {
    snprintf(text, sizeof text, "%d:%d", 100000 + i, 100000 + i);
    struct convmap_key k = {CONVMAP_STRING, text, strlen(text), 0};
    CHECK(convmap_find(&m, &k) == &rs[i].node, "key %d lost", i);
  }
  for (int i = 0; i < N; i++) convmap_remove(&m, &rs[i].node);
  CHECK(convmap_count(&m) == 0 && convmap_memory(&m) == 0,
        "the table kept %zu bytes", convmap_memory(&m));
  fprintf(stderr, "convmap: 10,000 keys take %zu B of buckets (%.1f B/key)\n",
          full, (double)full / N);
  free(rs);
  convmap_free(&m);
}

/* A burst, then random schedules (TGHOST_CONVMAP_SEED replays one). */
TEST(property) {
  make_universe();
  make_canon();
  test_burst();
  const char *one = getenv("TGHOST_CONVMAP_SEED");
  if (one) {
    run_schedule(strtoull(one, NULL, 10));
    return;
  }
  for (uint64_t i = 1; i <= 2000; i++) run_schedule(i);
  fprintf(stderr, "2000 random schedules passed\n");
}
