/* Unit tests of the memory store (src/memstore.c): a randomized property
 * test against a brute-force model. Each schedule runs random sets (with
 * and without expiry), gets, deletes and clock steps over a key universe
 * that includes the empty key, binary keys and keys that differ only in
 * their last byte, and checks after every step:
 *
 *   - get returns exactly the model's live value (bytes and length), and
 *     nothing for an absent or expired key;
 *   - the store never holds fewer entries than the model has live, nor
 *     more than live plus expired-but-unreclaimed;
 *   - once everything with an expiry has expired, a pass of writes
 *     reclaims it all (the sweep), so the count equals the live entries.
 *
 * TGHOST_MEMSTORE_SEED=<n> replays one schedule. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/memstore.h"

#define CHECK_ON_FAILURE() \
  fprintf(stderr, "  (schedule seed %" PRIu64 ")\n", current_seed)
#include "check.h"
#include "rng.h"
#include "testreg.h"

static uint64_t current_seed;

#define MAX_KEYS 300

struct model_entry {
  bool present;
  char value[64];
  size_t len;
  int64_t expires;   /* 0: never */
};

static char keys[MAX_KEYS][24];
static size_t key_lens[MAX_KEYS];
static struct model_entry model[MAX_KEYS];

static void make_keys(void) {
  for (int i = 0; i < MAX_KEYS; i++) {
    switch (i % 4) {
      case 0:   /* the empty key once, then decimal ids */
        key_lens[i] = (size_t)snprintf(keys[i], sizeof keys[i], i ? "%d" : "", i);
        break;
      case 1:   /* binary, with a NUL inside */
        keys[i][0] = 'b';
        keys[i][1] = '\0';
        keys[i][2] = (char)(i & 0xff);
        keys[i][3] = (char)(i >> 8);
        keys[i][4] = (char)0xff;
        key_lens[i] = 5;
        break;
      default:  /* long keys that differ only at the end */
        key_lens[i] = (size_t)snprintf(keys[i], sizeof keys[i],
                                       "session:chat:%08d", i);
        break;
    }
  }
}

static bool model_live(int k, int64_t now) {
  return model[k].present && (model[k].expires == 0 || model[k].expires > now);
}

static void check_all(struct memstore *m, int64_t now, int nkeys) {
  size_t live = 0, held_max = 0;
  for (int k = 0; k < nkeys; k++) {
    if (model[k].present) held_max++;
    if (model_live(k, now)) live++;
  }
  /* Counted before the gets below, which may reclaim expired entries. */
  CHECK(memstore_count(m) >= live && memstore_count(m) <= held_max,
        "count %zu, live %zu, at most %zu", memstore_count(m), live, held_max);
  for (int k = 0; k < nkeys; k++) {
    size_t len = 0;
    const char *v = memstore_get(m, keys[k], key_lens[k], now, &len);
    if (model_live(k, now)) {
      CHECK(v && len == model[k].len && memcmp(v, model[k].value, len) == 0,
            "key %d: wrong value", k);
    } else {
      CHECK(!v, "key %d: a value for an absent or expired key", k);
      model[k].present = false;   /* the get reclaimed it, if it was held */
    }
  }
}

static void run_schedule(uint64_t seed) {
  current_seed = seed;
  rng_state = seed * 0x9e3779b97f4a7c15ULL + 1;
  memset(model, 0, sizeof model);
  int nkeys = 8 + (int)rnd_below(MAX_KEYS - 8);
  struct memstore *m = memstore_new();
  int64_t now = 1000;
  int steps = 200 + (int)rnd_below(800);
  for (int step = 0; step < steps; step++) {
    int k = (int)rnd_below((unsigned)nkeys);
    switch (rnd_below(10)) {
      case 0: case 1: case 2: case 3: {   /* set */
        struct model_entry *e = &model[k];
        e->len = rnd_below(sizeof e->value);
        for (size_t i = 0; i < e->len; i++) e->value[i] = (char)rnd();
        e->expires = rnd_below(3) == 0 ? now + 1 + rnd_below(50) : 0;
        e->present = true;
        memstore_set(m, keys[k], key_lens[k], e->value, e->len, e->expires, now);
        break;
      }
      case 4: {   /* delete */
        bool had = memstore_delete(m, keys[k], key_lens[k]);
        CHECK(!model_live(k, now) || had, "delete of live key %d said absent", k);
        model[k].present = false;
        break;
      }
      case 5:   /* time passes */
        now += rnd_below(20);
        break;
      default: {   /* get */
        size_t len = 0;
        const char *v = memstore_get(m, keys[k], key_lens[k], now, &len);
        if (model_live(k, now)) {
          CHECK(v && len == model[k].len && memcmp(v, model[k].value, len) == 0,
                "key %d: wrong value", k);
        } else {
          CHECK(!v, "key %d: a value for an absent or expired key", k);
          model[k].present = false;
        }
        break;
      }
    }
    if (step % 50 == 0) check_all(m, now, nkeys);
  }
  check_all(m, now, nkeys);

  /* Let everything with an expiry expire, then keep writing one key: one
   * pass of the sweep (two buckets per set; at most 512 buckets for the
   * at most 301 entries this store ever held) reclaims every expired entry
   * without a get. */
  now += 1000;
  size_t live = 0;
  for (int k = 0; k < nkeys; k++) {
    if (model_live(k, now)) live++;
    else model[k].present = false;
  }
  size_t passes = MAX_KEYS + 16;
  char writer[] = "the-writer-key";
  for (size_t i = 0; i < passes; i++)
    memstore_set(m, writer, sizeof writer - 1, "x", 1, 0, now);
  CHECK(memstore_count(m) == live + 1, "after a pass of writes %zu entries "
        "are held, %zu live", memstore_count(m), live + 1);
  memstore_free(m);
}

/* Growth: 100,000 keys in, all readable, all deleted, count back to 0. */
static void test_many_keys(void) {
  struct memstore *m = memstore_new();
  char key[32], value[32];
  for (int i = 0; i < 100000; i++) {
    int kl = snprintf(key, sizeof key, "k%d", i);
    int vl = snprintf(value, sizeof value, "v%d", i * 7);
    memstore_set(m, key, (size_t)kl, value, (size_t)vl, 0, 0);
  }
  CHECK(memstore_count(m) == 100000, "count %zu", memstore_count(m));
  for (int i = 0; i < 100000; i++) {
    int kl = snprintf(key, sizeof key, "k%d", i);
    snprintf(value, sizeof value, "v%d", i * 7);
    size_t len;
    const char *v = memstore_get(m, key, (size_t)kl, 0, &len);
    CHECK(v && len == strlen(value) && memcmp(v, value, len) == 0, "key %d", i);
    CHECK(memstore_delete(m, key, (size_t)kl), "delete %d", i);
  }
  CHECK(memstore_count(m) == 0, "count %zu after deleting all", memstore_count(m));
  memstore_free(m);
}

/* Many keys, then random schedules against a model (TGHOST_MEMSTORE_SEED
 * replays one). */
TEST(property) {
  make_keys();
  test_many_keys();
  const char *one = getenv("TGHOST_MEMSTORE_SEED");
  if (one) {
    run_schedule(strtoull(one, NULL, 10));
    return;
  }
  long schedules = 2000;
  for (long i = 0; i < schedules; i++) run_schedule((uint64_t)i + 1);
  fprintf(stderr, "%ld random schedules passed\n", schedules);
}
