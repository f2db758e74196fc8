/* The webhook's window of recent update ids (src/idwindow.c): a randomized
 * property test against a brute-force model. Each schedule picks a
 * capacity (1 to a few thousand) and adds ids from a small or a wide
 * range (so repeats are frequent or rare, and ids collide in the table or
 * not), with runs of ascending ids as Telegram sends them; after every step
 * the window must agree with the model:
 *
 *   - add returns false exactly for an id the model holds;
 *   - the model is the last `capacity` distinct ids added (oldest out
 *     first), and contains() says yes for exactly those (checked for every
 *     id in the model and for a sample of others);
 *   - the size matches, and memory stays within its bound.
 *
 * TGHOST_IDWINDOW_SEED=<n> replays one schedule. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/idwindow.h"

#define CHECK_ON_FAILURE() \
  fprintf(stderr, "  (schedule seed %" PRIu64 ")\n", current_seed)
#include "check.h"
#include "rng.h"
#include "testreg.h"

static uint64_t current_seed;

/* The model: the ids in the window, oldest first. */
static int64_t *model;
static size_t model_n;

static bool model_has(int64_t id) {
  for (size_t i = 0; i < model_n; i++)
    if (model[i] == id) return true;
  return false;
}

static void run_schedule(uint64_t seed) {
  current_seed = seed;
  rng_state = seed * 2654435761u + 1;
  static const size_t capacities[] = {1, 2, 3, 7, 64, 100, 1000, 2048};
  size_t capacity = capacities[rnd() % 8];
  int64_t range = rnd() % 2 ? (int64_t)capacity * 2 + 3
                            : (int64_t)1 << (20 + rnd() % 40);
  size_t steps = 2000 + rnd() % 3000;
  struct idwindow w;
  idwindow_init(&w, capacity);
  model = realloc(model, (capacity + 1) * sizeof *model);
  model_n = 0;
  int64_t next = (int64_t)(rnd() % (uint64_t)range);
  for (size_t step = 0; step < steps; step++) {
    /* Mostly the next id, as Telegram counts; sometimes any id. */
    int64_t id = rnd() % 4 ? next++ % range : (int64_t)(rnd() % (uint64_t)range);
    bool expect_new = !model_has(id);
    bool added = idwindow_add(&w, id);
    CHECK(added == expect_new, "add(%" PRId64 ") returned %d, the model says "
          "%d (step %zu, capacity %zu)", id, added, expect_new, step, capacity);
    if (expect_new) {
      if (model_n == capacity) {
        memmove(model, model + 1, (model_n - 1) * sizeof *model);
        model_n--;
      }
      model[model_n++] = id;
    }
    CHECK(idwindow_size(&w) == model_n, "size %zu, the model has %zu",
          idwindow_size(&w), model_n);
    if (step % 97 == 0 || capacity <= 7) {
      for (size_t i = 0; i < model_n; i++)
        CHECK(idwindow_contains(&w, model[i]), "lost %" PRId64 " (step %zu)",
              model[i], step);
      for (int k = 0; k < 50; k++) {
        int64_t other = (int64_t)(rnd() % (uint64_t)range);
        CHECK(idwindow_contains(&w, other) == model_has(other),
              "contains(%" PRId64 ") = %d, the model says %d (step %zu)",
              other, idwindow_contains(&w, other), model_has(other), step);
      }
    }
    CHECK(w.ring_cap <= capacity && w.nslots <= 4 * capacity + 128,
          "memory past its bound: ring %zu, table %zu for capacity %zu",
          w.ring_cap, w.nslots, capacity);
  }
  CHECK(!idwindow_add(&w, -1) && !idwindow_contains(&w, -1),
        "a negative id is no update id");
  idwindow_free(&w);
}

/* Random schedules against a model (TGHOST_IDWINDOW_SEED replays one). */
TEST(property) {
  const char *replay = getenv("TGHOST_IDWINDOW_SEED");
  if (replay) {
    run_schedule(strtoull(replay, NULL, 10));
  } else {
    for (uint64_t seed = 1; seed <= 200; seed++) run_schedule(seed);
  }
  free(model);
  printf("idwindow: %s\n", replay ? "schedule replayed" : "200 schedules agree "
         "with the model");
}
