/* Micro-benchmark of sequentialize's C bookkeeping (src/seqmap.c): the
 * cost per update of acquiring its key and releasing it when it ends, at 1,
 * 1,000 and 100,000 distinct keys.
 *
 * A window of W updates is in flight: each step starts one update (one key
 * drawn at random from K keys, as a chat id would be) and ends the oldest
 * one, which releases its key and grants the next update queued on it.
 * Reported: ns per update (acquire + release + grant), and the map's
 * memory with the window full. Run by hand:
 *
 *   build/bench/seqbench [updates]
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pipeline/seqmap.h"

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void) {
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * 0x2545f4914f6cdd1dULL;
}

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static size_t grants;
static void on_grant(struct seqmap_holder *h, void *ud) { grants++; }

/* Returns ns per update. */
static double run(long updates, long nkeys, long window, int strings,
                  size_t *mem, double *waited) {
  struct seqmap m;
  seqmap_init(&m, 42, on_grant, NULL);
  struct seqmap_holder *hs = calloc((size_t)window, sizeof *hs);
  char (*text)[32] = calloc((size_t)window, sizeof *text);
  /* Warm-up: fill the window. */
  long waits = 0;
  for (long i = 0; i < window; i++) {
    struct seqmap_key k = {SEQMAP_INTEGER, NULL, 0, 0};
    long key = (long)(rnd() % (uint64_t)nkeys);
    if (strings) {
      k.type = SEQMAP_STRING;
      k.len = (size_t)snprintf(text[i], sizeof text[i], "-100%ld", key);
      k.str = text[i];
    } else {
      k.num = -1000000000000LL - key;
    }
    seqmap_holder_init(&hs[i], NULL);
    size_t w;
    seqmap_acquire(&m, &hs[i], &k, 1, &w);
  }
  *mem = seqmap_memory(&m);
  /* Precompute the keys so the loop measures the map, not snprintf. */
  struct seqmap_key *keys = calloc((size_t)updates, sizeof *keys);
  char (*ktext)[32] = strings ? calloc((size_t)updates, sizeof *ktext) : NULL;
  for (long i = 0; i < updates; i++) {
    long key = (long)(rnd() % (uint64_t)nkeys);
    if (strings) {
      keys[i].type = SEQMAP_STRING;
      keys[i].len = (size_t)snprintf(ktext[i], sizeof ktext[i], "-100%ld", key);
      keys[i].str = ktext[i];
    } else {
      keys[i].type = SEQMAP_INTEGER;
      keys[i].num = -1000000000000LL - key;
    }
  }
  double t0 = now_ns();
  for (long i = 0; i < updates; i++) {
    struct seqmap_holder *h = &hs[i % window];
    seqmap_release(&m, h);          /* the oldest update ends */
    seqmap_holder_init(h, NULL);
    size_t w;
    seqmap_acquire(&m, h, &keys[i], 1, &w);   /* a new one starts */
    waits += w > 0;
  }
  double t1 = now_ns();
  for (long i = 0; i < window; i++) seqmap_release(&m, &hs[i]);
  if (seqmap_key_count(&m) != 0) {
    fprintf(stderr, "bug: keys left\n");
    exit(1);
  }
  seqmap_free(&m);
  free(keys);
  free(ktext);
  free(hs);
  free(text);
  *waited = (double)waits / (double)updates;
  return (t1 - t0) / (double)updates;
}

int main(int argc, char **argv) {
  long updates = argc > 1 ? strtol(argv[1], NULL, 10) : 2000000;
  static const long key_counts[] = {1, 1000, 100000};
  static const long windows[] = {500, 100000};
  printf("sequentialize bookkeeping, %ld updates per run "
         "(acquire + release + grant)\n", updates);
  printf("%8s %8s %8s %10s %8s %12s\n", "keys", "window", "key",
         "ns/update", "waited", "map memory");
  for (size_t w = 0; w < sizeof windows / sizeof *windows; w++) {
    for (size_t k = 0; k < sizeof key_counts / sizeof *key_counts; k++) {
      for (int strings = 0; strings <= 1; strings++) {
        size_t mem;
        double waited;
        double ns = run(updates, key_counts[k], windows[w], strings, &mem,
                        &waited);
        printf("%8ld %8ld %8s %10.1f %7.0f%% %9.1f KiB\n", key_counts[k],
               windows[w], strings ? "string" : "integer", ns,
               waited * 100.0, (double)mem / 1024.0);
      }
    }
  }
  return 0;
}
