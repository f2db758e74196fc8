/* xorshift64*, what the randomized unit tests draw from: a run replays
 * from its seed alone. A test file includes this once and sets rng_state
 * (never to 0) from its seed before drawing. */
#ifndef TGHOST_TESTS_RNG_H
#define TGHOST_TESTS_RNG_H

#include <stdint.h>

static uint64_t rng_state;

static inline uint64_t rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dULL;
}

/* A number in [0, n). */
static inline unsigned rnd_below(unsigned n) {
  return (unsigned)(rnd() % n);
}

#endif
