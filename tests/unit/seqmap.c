/* Unit tests of the sequentialize map (src/seqmap.c), chiefly a randomized
 * property test: thousands of random schedules of arrivals (0-3 keys, with
 * duplicates, integer and string keys that look alike, long keys), nested
 * acquires, completions and cancellations in random order, each step
 * checked against a brute-force model:
 *
 *   - a holder runs exactly when, for every key it is queued on, every
 *     holder that queued on that key before it has left (so no two holders
 *     sharing a key overlap, each runs after all earlier sharing ones, and
 *     holders with disjoint keys never wait for each other);
 *   - on_grant fires once per transition to running, never spuriously;
 *   - the map's key and link counts match the model, and the map is empty
 *     (and small) once nothing is in flight;
 *   - a holder that steps aside (a conversation waiting for its user) is
 *     out of every queue: it is never granted meanwhile and the holders
 *     behind it run; when it rejoins it queues again at the tail of each of
 *     its keys, and a release while it is aside drops its keys for good.
 *
 * TGHOST_SEQMAP_SEED=<n> replays one schedule; TGHOST_SEQMAP_SCHEDULES=<n>
 * runs more or fewer. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/seqmap.h"

#define CHECK_ON_FAILURE() \
  fprintf(stderr, "  (schedule seed %" PRIu64 ")\n", current_seed)
#include "check.h"
#include "rng.h"
#include "testreg.h"

static uint64_t current_seed;

/* --- the key universe --------------------------------------------------- */

#define MAX_KEYS 12
static char key_text[MAX_KEYS][64];
static struct seqmap_key universe[MAX_KEYS];

/* Key i: the integer i/3, the string of the same digits, or a long string
 * (stored outside the entry), so look-alikes of different types must
 * stay apart. */
static void make_universe(void) {
  for (int i = 0; i < MAX_KEYS; i++) {
    struct seqmap_key *k = &universe[i];
    memset(k, 0, sizeof *k);
    switch (i % 3) {
      case 0:
        k->type = SEQMAP_INTEGER;
        k->num = i / 3;
        break;
      case 1:
        snprintf(key_text[i], sizeof key_text[i], "%d", i / 3);
        k->type = SEQMAP_STRING;
        k->str = key_text[i];
        k->len = strlen(key_text[i]);
        break;
      default:
        snprintf(key_text[i], sizeof key_text[i],
                 "a-long-key-that-does-not-fit-inline-%d", i);
        k->type = SEQMAP_STRING;
        k->str = key_text[i];
        k->len = strlen(key_text[i]);
        break;
    }
  }
}

/* --- the model ---------------------------------------------------------- */

#define MAX_HOLDERS 48
#define MAX_FRAMES 3

struct sim {
  struct seqmap_holder h;
  bool active;
  bool running;                 /* what the map told us */
  int nframes;
  unsigned frame_ids[MAX_FRAMES];
  /* which keys each frame joined (bit per universe key) */
  unsigned frame_keys[MAX_FRAMES];
  bool waiting_frame;           /* the last frame still waits */
  bool aside;                   /* stepped aside: in no queue */
  int grants;                   /* grants not yet matched by the model */
};

static struct sim sims[MAX_HOLDERS];
/* Per key, the holders queued on it in acquire order. */
static int queue[MAX_KEYS][MAX_HOLDERS];
static int qlen[MAX_KEYS];
static int nuniverse;

static void on_grant(struct seqmap_holder *h, void *ud) {
  struct sim *s = h->ud;
  CHECK(s->active, "grant for a holder that left");
  CHECK(!s->running, "grant for a holder already running");
  s->grants++;
  s->running = true;
}

static unsigned held_keys(const struct sim *s) {
  unsigned bits = 0;
  for (int f = 0; f < s->nframes; f++) bits |= s->frame_keys[f];
  return bits;
}

static bool model_runnable(int idx) {
  const struct sim *s = &sims[idx];
  for (int k = 0; k < nuniverse; k++) {
    if (!(held_keys(s) & (1u << k))) continue;
    if (qlen[k] == 0 || queue[k][0] != idx) return false;
  }
  return true;
}

static void model_unqueue(int idx, unsigned keys) {
  for (int k = 0; k < nuniverse; k++) {
    if (!(keys & (1u << k))) continue;
    int j = 0;
    while (j < qlen[k] && queue[k][j] != idx) j++;
    CHECK(j < qlen[k], "model: holder %d not queued on key %d", idx, k);
    memmove(&queue[k][j], &queue[k][j + 1],
            (size_t)(qlen[k] - j - 1) * sizeof queue[k][0]);
    qlen[k]--;
  }
}

/* Everything the map says agrees with the model. */
static void check_invariants(const struct seqmap *m) {
  size_t links = 0, keys = 0;
  unsigned aside_keys = 0;
  for (int i = 0; i < MAX_HOLDERS; i++) {
    if (!sims[i].active || !sims[i].aside) continue;
    unsigned mine = held_keys(&sims[i]);
    aside_keys |= mine;
    links += (size_t)__builtin_popcount(mine);
  }
  for (int k = 0; k < nuniverse; k++) {
    links += (size_t)qlen[k];
    if (qlen[k] > 0 || (aside_keys & (1u << k))) keys++;
  }
  CHECK(seqmap_link_count(m) == links, "map has %zu links, model %zu",
        seqmap_link_count(m), links);
  CHECK(seqmap_key_count(m) == keys, "map has %zu keys, model %zu",
        seqmap_key_count(m), keys);
  for (int i = 0; i < MAX_HOLDERS; i++) {
    struct sim *s = &sims[i];
    if (!s->active) continue;
    if (s->aside) {
      CHECK(!s->running && s->grants == 0, "holder %d granted while aside", i);
      continue;
    }
    bool should = model_runnable(i);
    CHECK(s->running == should,
          "holder %d: the map says %s, the model says %s", i,
          s->running ? "running" : "waiting", should ? "runnable" : "waiting");
    if (s->running) s->waiting_frame = false;
    CHECK(s->grants <= 1, "holder %d granted %d times", i, s->grants);
    s->grants = 0;
  }
  /* No two running holders share a key (implied by the above, checked
   * directly all the same). */
  unsigned taken = 0;
  for (int i = 0; i < MAX_HOLDERS; i++) {
    if (!sims[i].active || !sims[i].running) continue;
    unsigned mine = held_keys(&sims[i]);
    CHECK((taken & mine) == 0, "holder %d overlaps another on a key", i);
    taken |= mine;
  }
}

static unsigned random_key_set(int max, struct seqmap_key *out, size_t *n) {
  unsigned bits = 0;
  int count = (int)rnd_below((unsigned)max + 1);
  *n = 0;
  for (int i = 0; i < count; i++) {
    int k = (int)rnd_below((unsigned)nuniverse);
    out[(*n)++] = universe[k];           /* duplicates on purpose */
    bits |= 1u << k;
  }
  return bits;
}

static void do_acquire(struct seqmap *m, int idx) {
  struct sim *s = &sims[idx];
  struct seqmap_key keys[4];
  size_t n;
  unsigned bits = random_key_set(s->nframes == 0 ? 3 : 2, keys, &n);
  unsigned fresh = bits & ~held_keys(s);
  size_t waiting = 99;
  unsigned frame = seqmap_acquire(m, &s->h, keys, n, &waiting);
  CHECK(frame != 0, "acquire refused for a running holder");
  s->frame_ids[s->nframes] = frame;
  s->frame_keys[s->nframes] = fresh;
  s->nframes++;
  for (int k = 0; k < nuniverse; k++)
    if (fresh & (1u << k)) queue[k][qlen[k]++] = idx;
  s->active = true;
  s->running = waiting == 0;
  s->waiting_frame = waiting > 0;
  CHECK(s->h.waiting == waiting, "waiting %zu but holder says %zu", waiting,
        s->h.waiting);
}

static void do_release_all(struct seqmap *m, int idx) {
  struct sim *s = &sims[idx];
  if (!s->aside) model_unqueue(idx, held_keys(s));
  s->active = false;
  s->running = false;
  seqmap_release(m, &s->h);
  CHECK(s->h.links == NULL && s->h.nlinks == 0 && s->h.waiting == 0,
        "holder not empty after release");
  memset(s, 0, sizeof *s);
  seqmap_holder_init(&s->h, s);
}

static void do_release_frame(struct seqmap *m, int idx, int f) {
  struct sim *s = &sims[idx];
  if (!s->aside) model_unqueue(idx, s->frame_keys[f]);
  seqmap_release_frame(m, &s->h, s->frame_ids[f]);
  for (int j = f; j + 1 < s->nframes; j++) {
    s->frame_ids[j] = s->frame_ids[j + 1];
    s->frame_keys[j] = s->frame_keys[j + 1];
  }
  s->nframes--;
  if (s->aside) {
    s->aside = held_keys(s) != 0;
    CHECK(s->h.aside == s->aside, "holder %d: aside %d, the model says %d",
          idx, s->h.aside, s->aside);
    if (!s->aside) s->running = true;   /* nothing left to wait for */
    return;
  }
  if (s->waiting_frame && f == s->nframes) {
    /* The waiting frame was dropped: the holder runs again. */
    s->waiting_frame = false;
    s->running = true;
  }
}

/* A running holder starts waiting for its user: out of its queues. */
static void do_step_aside(struct seqmap *m, int idx) {
  struct sim *s = &sims[idx];
  unsigned keys = held_keys(s);
  size_t n = seqmap_step_aside(m, &s->h);
  CHECK(n == (size_t)__builtin_popcount(keys), "stepped aside with %zu keys "
        "of %d", n, __builtin_popcount(keys));
  if (n == 0) return;
  model_unqueue(idx, keys);
  s->aside = true;
  s->running = false;
}

/* Its user answered: it queues again behind whoever has its keys now. */
static void do_rejoin(struct seqmap *m, int idx) {
  struct sim *s = &sims[idx];
  unsigned keys = held_keys(s);
  for (int k = 0; k < nuniverse; k++)
    if (keys & (1u << k)) queue[k][qlen[k]++] = idx;
  size_t waiting = seqmap_rejoin(m, &s->h);
  s->aside = false;
  s->running = waiting == 0;
  s->waiting_frame = false;
  CHECK(s->h.waiting == waiting, "rejoin: waiting %zu but holder says %zu",
        waiting, s->h.waiting);
}

static int pick(bool (*pred)(const struct sim *)) {
  int found[MAX_HOLDERS], n = 0;
  for (int i = 0; i < MAX_HOLDERS; i++)
    if (pred(&sims[i])) found[n++] = i;
  return n ? found[rnd_below((unsigned)n)] : -1;
}

static bool is_free(const struct sim *s) { return !s->active; }
static bool is_aside(const struct sim *s) { return s->active && s->aside; }
static bool is_active(const struct sim *s) { return s->active; }
static bool is_running(const struct sim *s) { return s->active && s->running; }
static bool is_waiting(const struct sim *s) {
  return s->active && !s->running && !s->aside;
}
static bool can_nest(const struct sim *s) {
  return s->active && s->running && s->nframes < MAX_FRAMES;
}
static bool has_inner_frame(const struct sim *s) {
  return s->active && s->running && s->nframes >= 2;
}

static void run_schedule(uint64_t seed) {
  current_seed = seed;
  rng_state = seed * 0x9e3779b97f4a7c15ULL + 1;
  nuniverse = 1 + (int)rnd_below(MAX_KEYS);
  memset(qlen, 0, sizeof qlen);
  for (int i = 0; i < MAX_HOLDERS; i++) {
    memset(&sims[i], 0, sizeof sims[i]);
    seqmap_holder_init(&sims[i].h, &sims[i]);
  }
  struct seqmap m;
  seqmap_init(&m, seed, on_grant, NULL);
  int steps = 50 + (int)rnd_below(250);
  /* Some schedules favour arrivals (long queues), others completions. */
  unsigned arrive_weight = 2 + rnd_below(6);
  for (int step = 0; step < steps; step++) {
    unsigned op = rnd_below(arrive_weight + 9);
    int idx;
    if (op < arrive_weight) {
      if ((idx = pick(is_free)) >= 0) do_acquire(&m, idx);
    } else if (op == arrive_weight || op == arrive_weight + 1) {
      /* completion: finished, failed or timed out alike */
      if ((idx = pick(is_running)) >= 0) do_release_all(&m, idx);
    } else if (op == arrive_weight + 2) {
      /* cancellation, most often of one still waiting */
      if ((idx = pick(is_waiting)) >= 0 || (idx = pick(is_active)) >= 0)
        do_release_all(&m, idx);
    } else if (op == arrive_weight + 3) {
      if ((idx = pick(can_nest)) >= 0) do_acquire(&m, idx);
    } else if (op == arrive_weight + 4) {
      /* the innermost frame ends (its middleware returned) */
      if ((idx = pick(has_inner_frame)) >= 0)
        do_release_frame(&m, idx, sims[idx].nframes - 1);
    } else if (op == arrive_weight + 5) {
      /* a waiting inner frame is dropped (its wait was cancelled) */
      if ((idx = pick(is_waiting)) >= 0 && sims[idx].nframes >= 2 &&
          sims[idx].waiting_frame)
        do_release_frame(&m, idx, sims[idx].nframes - 1);
    } else if (op == arrive_weight + 6) {
      /* a handler starts waiting for its user's next message */
      if ((idx = pick(is_running)) >= 0) do_step_aside(&m, idx);
    } else if (op == arrive_weight + 7) {
      /* ... which came: it queues for its keys again */
      if ((idx = pick(is_aside)) >= 0) do_rejoin(&m, idx);
    } else {
      /* a conversation cancelled while it waits closes its frames */
      if ((idx = pick(is_aside)) >= 0)
        do_release_frame(&m, idx, (int)rnd_below((unsigned)sims[idx].nframes));
    }
    check_invariants(&m);
  }
  /* Drain: complete whatever runs until nothing is left; something must
   * always be able to run (no deadlock with single-frame holders; nested
   * frames are finished by releasing waiting holders). */
  int idx;
  while ((idx = pick(is_active)) >= 0) {
    int r = pick(is_running);
    do_release_all(&m, r >= 0 ? r : idx);
    check_invariants(&m);
  }
  CHECK(seqmap_key_count(&m) == 0 && seqmap_link_count(&m) == 0,
        "map not empty at the end: %zu keys, %zu links", seqmap_key_count(&m),
        seqmap_link_count(&m));
  seqmap_free(&m);
}

/* --- targeted tests ----------------------------------------------------- */

static struct seqmap_key ikey(int64_t v) {
  struct seqmap_key k = {SEQMAP_INTEGER, NULL, 0, v};
  return k;
}

static int grant_count;
static struct seqmap_holder *last_granted;
static void count_grant(struct seqmap_holder *h, void *ud) {
  grant_count++;
  last_granted = h;
}

/* A holder that leaves while it waits must not let the one behind it
 * overtake the one before it. */
static void test_cancel_in_the_middle(void) {
  struct seqmap m;
  struct seqmap_holder a, b, c;
  seqmap_init(&m, 1, count_grant, NULL);
  seqmap_holder_init(&a, NULL);
  seqmap_holder_init(&b, NULL);
  seqmap_holder_init(&c, NULL);
  struct seqmap_key k = ikey(7);
  size_t w;
  CHECK(seqmap_acquire(&m, &a, &k, 1, &w) && w == 0, "a waits");
  CHECK(seqmap_acquire(&m, &b, &k, 1, &w) && w == 1, "b does not wait");
  CHECK(seqmap_acquire(&m, &c, &k, 1, &w) && w == 1, "c does not wait");
  CHECK(seqmap_acquire(&m, &b, &k, 1, &w) == 0, "acquire while waiting");
  grant_count = 0;
  seqmap_release(&m, &b);
  CHECK(grant_count == 0, "cancelling b granted someone");
  seqmap_release(&m, &a);
  CHECK(grant_count == 1 && last_granted == &c, "c was not granted");
  seqmap_release(&m, &c);
  CHECK(seqmap_key_count(&m) == 0, "keys left");
  seqmap_free(&m);
}

/* A holder that steps aside lets the next one run at once, is not granted
 * while aside, and queues behind whoever holds its key when it rejoins;
 * its frames survive (a frame release after the rejoin still works). */
static void test_step_aside(void) {
  struct seqmap m;
  struct seqmap_holder a, b, c;
  seqmap_init(&m, 3, count_grant, NULL);
  seqmap_holder_init(&a, NULL);
  seqmap_holder_init(&b, NULL);
  seqmap_holder_init(&c, NULL);
  struct seqmap_key k = ikey(42), k2 = ikey(43);
  size_t w;
  unsigned fa = seqmap_acquire(&m, &a, &k, 1, &w);
  CHECK(fa && w == 0, "a waits");
  CHECK(seqmap_acquire(&m, &b, &k, 1, &w) && w == 1, "b does not wait");
  grant_count = 0;
  CHECK(seqmap_step_aside(&m, &a) == 1, "a set no key aside");
  CHECK(grant_count == 1 && last_granted == &b, "b was not granted");
  CHECK(seqmap_acquire(&m, &a, &k2, 1, &w) == 0, "acquire while aside");
  CHECK(seqmap_step_aside(&m, &a) == 0, "stepped aside twice");
  CHECK(seqmap_acquire(&m, &c, &k, 1, &w) && w == 1, "c does not wait");
  CHECK(seqmap_rejoin(&m, &a) == 1, "a does not wait behind b and c");
  grant_count = 0;
  seqmap_release(&m, &b);
  CHECK(grant_count == 1 && last_granted == &c, "c was not next");
  seqmap_release(&m, &c);
  CHECK(grant_count == 2 && last_granted == &a, "a was not granted");
  seqmap_release_frame(&m, &a, fa);
  CHECK(a.nlinks == 0 && seqmap_key_count(&m) == 0, "a's frame stayed");
  /* A key only an aside holder has stays in the map until it is gone. */
  CHECK(seqmap_acquire(&m, &a, &k, 1, &w) && w == 0, "a waits again");
  CHECK(seqmap_step_aside(&m, &a) == 1, "a set no key aside");
  CHECK(seqmap_key_count(&m) == 1 && seqmap_link_count(&m) == 1,
        "the aside key is gone");
  seqmap_release(&m, &a);
  CHECK(seqmap_key_count(&m) == 0 && seqmap_link_count(&m) == 0 && !a.aside,
        "an aside release left keys");
  seqmap_free(&m);
}

/* 100,000 distinct keys in flight, then none: the table shrinks back and
 * the free lists keep only a constant number of spares. */
static void test_memory_returns(void) {
  enum { N = 100000 };
  struct seqmap m;
  seqmap_init(&m, 2, count_grant, NULL);
  size_t empty = seqmap_memory(&m);
  struct seqmap_holder *hs = calloc(N, sizeof *hs);
  for (int i = 0; i < N; i++) {
    seqmap_holder_init(&hs[i], NULL);
    struct seqmap_key k = ikey(i);
    size_t w;
    seqmap_acquire(&m, &hs[i], &k, 1, &w);
    CHECK(w == 0, "distinct key %d waits", i);
  }
  size_t full = seqmap_memory(&m);
  CHECK(seqmap_key_count(&m) == N, "%zu keys", seqmap_key_count(&m));
  for (int i = 0; i < N; i++) seqmap_release(&m, &hs[i]);
  size_t after = seqmap_memory(&m);
  CHECK(seqmap_key_count(&m) == 0, "keys left");
  CHECK(after < 32 * 1024 && after < full / 100,
        "memory after the burst: %zu bytes (empty %zu, full %zu)", after,
        empty, full);
  fprintf(stderr, "memory: empty %zu B, 100,000 keys in flight %zu B "
          "(%.0f B/key), after %zu B\n", empty, full, (double)full / N, after);
  free(hs);
  seqmap_free(&m);
}

/* The scenarios, then random schedules (TGHOST_SEQMAP_SEED replays one,
 * TGHOST_SEQMAP_SCHEDULES sets how many). */
TEST(property) {
  make_universe();
  test_cancel_in_the_middle();
  test_step_aside();
  test_memory_returns();
  const char *one = getenv("TGHOST_SEQMAP_SEED");
  if (one) {
    run_schedule(strtoull(one, NULL, 10));
    return;
  }
  const char *count = getenv("TGHOST_SEQMAP_SCHEDULES");
  long schedules = count ? strtol(count, NULL, 10) : 5000;
  for (long i = 0; i < schedules; i++) run_schedule((uint64_t)i + 1);
  fprintf(stderr, "%ld random schedules passed\n", schedules);
  return;
}
