/* Unit tests of the storage-backend interface (src/store/kvstore.h) on
 * its own loop, without Lua:
 *
 *   - the submit contract, for every backend of the registry (Redis
 *     pointed at a port where nothing listens): no request completes
 *     inside submit, every one completes exactly once from the loop, in
 *     submission order, errors included;
 *   - memory against a brute-force model, randomized: get, set, delete,
 *     compare-and-set and paged listing (every key of a prefix once, in
 *     byte order, pages within their limit), over keys with shared
 *     prefixes, NULs and 0xff bytes;
 *   - what answering from the loop costs memory (printed: the price of
 *     the uniform contract, against run_now, which scripts use).
 *
 * TGHOST_KVSTORE_SEED=<n> replays one schedule. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/kvstore.h"
#include "store/storages.h"

static uint64_t current_seed;
#define CHECK_ON_FAILURE() \
  fprintf(stderr, "  (seed %" PRIu64 ")\n", current_seed)
#include "check.h"
#include "testreg.h"

struct record {
  struct kvreq *submitted[64];
  bool in_order[64];
  int n;
  bool in_submit;
  bool inline_completion;
  char *errors[64];
};

static void on_done(struct kvreq *r, void *ud) {
  struct record *rec = ud;
  if (rec->in_submit) rec->inline_completion = true;
  if (rec->n < 64) {
    rec->in_order[rec->n] = rec->submitted[rec->n] == r;
    rec->errors[rec->n] = r->error ? xstrdup(r->error) : NULL;
  }
  rec->n++;
  kvreq_free(r);
}

static struct kvreq *numbered(int i, struct record *rec) {
  char key[16];
  int len = snprintf(key, sizeof key, "req:%d", i);
  switch (i % 5) {
    case 0: return kvreq_set("ns_", key, (size_t)len, "v", 1, 0, on_done, rec);
    case 1: return kvreq_get("ns_", key, (size_t)len, on_done, rec);
    case 2: return kvreq_cas("ns_", key, (size_t)len, NULL, 0, "w", 1, 0,
                             on_done, rec);
    case 3: return kvreq_list("ns_", "req:", 4, 3, NULL, 0, on_done, rec);
    default: return kvreq_delete("ns_", key, (size_t)len, on_done, rec);
  }
}

static void run_loop_until(struct event_base *base, struct record *rec,
                           int want, int timeout_ms) {
  for (int waited = 0; rec->n < want && waited < timeout_ms; waited += 10) {
    struct timeval tv = {0, 10000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
  }
}

/* Submits 20 requests of every kind to the store and checks how they
 * come back. Returns the record (errors, for the caller to look at). */
static void check_contract(struct event_base *base, struct kvstore *store,
                           struct record *rec, const char *what) {
  memset(rec, 0, sizeof *rec);
  for (int i = 0; i < 20; i++) {
    struct kvreq *r = numbered(i, rec);
    rec->submitted[i] = r;
    rec->in_submit = true;
    kvstore_submit(store, r);
    rec->in_submit = false;
    CHECK(rec->n == 0 && !rec->inline_completion,
          "%s: a request completed inside submit", what);
  }
  run_loop_until(base, rec, 20, 20000);
  CHECK(rec->n == 20, "%s: %d of 20 requests completed", what, rec->n);
  for (int i = 0; i < 20; i++)
    CHECK(rec->in_order[i], "%s: completion %d is not request %d", what, i, i);
  /* A few more passes: nothing completes twice. */
  run_loop_until(base, rec, 21, 100);
  CHECK(rec->n == 20, "%s: %d completions for 20 requests", what, rec->n);
}

static void free_errors(struct record *rec) {
  for (int i = 0; i < 20; i++) free(rec->errors[i]);
}

TEST(submit_contract_every_backend) {
  struct event_base *base = event_base_new();
  struct storages *s = storages_new(base);
  char path[] = "/tmp/tghost-kvstore-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0, "mkstemp");
  close(fd);
  const struct kv_backend *b;
  int backends = 0;
  for (size_t i = 0; (b = storages_backend_at(i)); i++) {
    const char *target = strcmp(b->kind, "sqlite") == 0  ? path
                         : strcmp(b->kind, "redis") == 0 ? "redis://127.0.0.1:1"
                                                         : "contract";
    struct buf err = BUF_INIT;
    struct kvstore *store = storages_open(s, b, target, &err);
    CHECK(store, "%s: %s", b->kind, err.data);
    struct record rec;
    check_contract(base, store, &rec, b->kind);
    bool redis = strcmp(b->kind, "redis") == 0;
    for (int k = 0; k < 20; k++) {
      if (redis)
        CHECK(rec.errors[k] && strstr(rec.errors[k], "redis storage "
                                      "redis://127.0.0.1:1"),
              "redis: request %d: %s", k, rec.errors[k]);
      else
        CHECK(!rec.errors[k], "%s: request %d failed: %s", b->kind, k,
              rec.errors[k]);
    }
    free_errors(&rec);
    if (redis) {
      /* Down now: refused at once by the connection, still from the loop. */
      check_contract(base, store, &rec, "redis, down");
      CHECK(rec.errors[0] && strstr(rec.errors[0], "is unreachable"),
            "redis, down: %s", rec.errors[0]);
      free_errors(&rec);
    }
    backends++;
    buf_free(&err);
  }
  CHECK(backends == 3, "%d backends registered", backends);
  storages_free(s);
  event_base_free(base);
  unlink(path);
  char wal[64];
  snprintf(wal, sizeof wal, "%s-wal", path);
  unlink(wal);
  snprintf(wal, sizeof wal, "%s-shm", path);
  unlink(wal);
}

/* --- memory against a model ------------------------------------------------ */

static uint64_t rng_state;
static uint64_t rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dULL;
}

#define KEYS 120

static char keys[KEYS][8];
static size_t key_lens[KEYS];
static struct {
  bool present;
  char value[8];
  size_t len;
} model[KEYS];

/* Keys over a small alphabet with NUL and 0xff, so prefixes are shared. */
static void make_keys(void) {
  static const char alphabet[] = {'a', 'b', '\0', (char)0xff};
  for (int i = 0; i < KEYS; i++) {
    key_lens[i] = 1 + (size_t)(i % 4);
    unsigned v = (unsigned)i;
    for (size_t k = 0; k < key_lens[i]; k++, v /= 4) keys[i][k] = alphabet[v % 4];
  }
  /* Distinct keys only: drop duplicates by making them longer. */
  for (int i = 0; i < KEYS; i++)
    for (int j = 0; j < i; j++)
      if (key_lens[i] == key_lens[j] && memcmp(keys[i], keys[j], key_lens[i]) == 0) {
        keys[i][key_lens[i]] = (char)('c' + i % 20);
        key_lens[i]++;
        j = -1;
      }
}

static int cmp_bytes(const char *a, size_t al, const char *b, size_t bl) {
  int c = memcmp(a, b, al < bl ? al : bl);
  return c ? c : (al < bl ? -1 : al > bl);
}

static struct kvreq *run_now(struct kvstore *s, struct kvreq *r) {
  s->backend->run_now(s->impl, r);
  return r;
}

static void check_listing(struct kvstore *s, const char *prefix,
                          size_t prefix_len) {
  /* The model's keys with the prefix, counted. */
  int want = 0;
  for (int i = 0; i < KEYS; i++)
    if (model[i].present && key_lens[i] >= prefix_len &&
        memcmp(keys[i], prefix, prefix_len) == 0)
      want++;
  size_t limit = 1 + rnd() % 7;
  char *cursor = NULL;
  size_t cursor_len = 0, got = 0;
  char last[8];
  size_t last_len = 0;
  bool have_last = false;
  for (int pages = 0;; pages++) {
    CHECK(pages < 1000, "the listing does not end");
    struct kvreq *r = run_now(s, kvreq_list("", prefix, prefix_len, limit,
                                            cursor, cursor_len, NULL, NULL));
    CHECK(r->nkeys <= limit, "a page of %zu keys, limit %zu", r->nkeys, limit);
    for (size_t k = 0; k < r->nkeys; k++) {
      const struct kv_key *key = &r->keys[k];
      CHECK(key->len >= prefix_len && memcmp(key->data, prefix, prefix_len) == 0,
            "a listed key lacks the prefix");
      CHECK(!have_last || cmp_bytes(last, last_len, key->data, key->len) < 0,
            "keys out of order, or listed twice");
      int found = -1;
      for (int i = 0; i < KEYS; i++)
        if (key_lens[i] == key->len && memcmp(keys[i], key->data, key->len) == 0)
          found = i;
      CHECK(found >= 0 && model[found].present, "listed a key that is absent");
      memcpy(last, key->data, key->len);
      last_len = key->len;
      have_last = true;
      got++;
    }
    free(cursor);
    cursor = r->cursor ? xstrndup(r->cursor, r->cursor_len) : NULL;
    cursor_len = r->cursor_len;
    kvreq_free(r);
    if (!cursor) break;
  }
  CHECK(got == (size_t)want, "listed %zu keys of %d", got, want);
}

TEST(memory_model) {
  make_keys();
  struct event_base *base = event_base_new();
  struct storages *st = storages_new(base);
  struct buf err = BUF_INIT;
  const char *env = getenv("TGHOST_KVSTORE_SEED");
  uint64_t first = env ? strtoull(env, NULL, 10) : 1, n = env ? 1 : 60;
  for (uint64_t seed = first; seed < first + n; seed++) {
    current_seed = seed;
    rng_state = seed * 0x9e3779b97f4a7c15ULL + 1;
    char name[32];
    snprintf(name, sizeof name, "model-%" PRIu64, seed);
    struct kvstore *s = storages_open(st, storages_backend("memory"), name, &err);
    memset(model, 0, sizeof model);
    for (int step = 0; step < 800; step++) {
      int i = (int)(rnd() % KEYS);
      char value[8];
      size_t vlen = (size_t)snprintf(value, sizeof value, "%d", (int)(rnd() % 5));
      struct kvreq *r;
      switch (rnd() % 6) {
        case 0:
          kvreq_free(run_now(s, kvreq_set("", keys[i], key_lens[i], value,
                                          vlen, 0, NULL, NULL)));
          model[i].present = true;
          memcpy(model[i].value, value, vlen);
          model[i].len = vlen;
          break;
        case 1:
          kvreq_free(run_now(s, kvreq_delete("", keys[i], key_lens[i], NULL,
                                             NULL)));
          model[i].present = false;
          break;
        case 2:
          r = run_now(s, kvreq_get("", keys[i], key_lens[i], NULL, NULL));
          CHECK(model[i].present ? r->value && r->value_len == model[i].len &&
                                       memcmp(r->value, model[i].value,
                                              r->value_len) == 0
                                 : r->value == NULL,
                "get differs from the model");
          kvreq_free(r);
          break;
        case 3:
        case 4: {   /* cas from the right or a wrong value, or absent */
          bool from_absent = rnd() % 3 == 0;
          const char *expected = from_absent ? NULL : value;
          r = run_now(s, kvreq_cas("", keys[i], key_lens[i], expected,
                                   expected ? vlen : 0, "new", 3, 0, NULL,
                                   NULL));
          bool should = from_absent ? !model[i].present
                                    : model[i].present && model[i].len == vlen &&
                                          memcmp(model[i].value, value, vlen) == 0;
          CHECK(r->swapped == should, "cas swapped %d, the model says %d",
                r->swapped, should);
          if (should) {
            model[i].present = true;
            memcpy(model[i].value, "new", 3);
            model[i].len = 3;
          } else {
            CHECK(model[i].present ? r->value && r->value_len == model[i].len
                                   : r->value == NULL,
                  "a failed cas reports another value than the model's");
          }
          kvreq_free(r);
          break;
        }
        default: {
          size_t plen = rnd() % 3;
          check_listing(s, keys[i], plen < key_lens[i] ? plen : key_lens[i]);
        }
      }
    }
  }
  buf_free(&err);
  storages_free(st);
  event_base_free(base);
}

/* --- what answering from the loop costs memory -------------------------- */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int completions;
static void count_done(struct kvreq *r, void *ud) {
  completions++;
  kvreq_free(r);
}

/* 200,000 gets of a 100-byte value: through run_now, and submitted with
 * their answers from the loop, one loop pass per request (the case of a
 * script's call: it waits for its answer) and in batches of 100. */
TEST(memory_deferred_cost) {
  struct event_base *base = event_base_new();
  struct storages *st = storages_new(base);
  struct buf err = BUF_INIT;
  struct kvstore *s = storages_open(st, storages_backend("memory"), "cost", &err);
  char value[100];
  memset(value, 'v', sizeof value);
  kvreq_free(run_now(s, kvreq_set("", "k", 1, value, sizeof value, 0, NULL, NULL)));
  enum { N = 200000 };
  double t0 = now_s();
  for (int i = 0; i < N; i++)
    kvreq_free(run_now(s, kvreq_get("", "k", 1, NULL, NULL)));
  double inline_ns = (now_s() - t0) * 1e9 / N;
  completions = 0;
  t0 = now_s();
  for (int i = 0; i < N; i++) {
    kvstore_submit(s, kvreq_get("", "k", 1, count_done, NULL));
    event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
  }
  double one_ns = (now_s() - t0) * 1e9 / N;
  CHECK(completions == N, "%d of %d completed", completions, N);
  completions = 0;
  t0 = now_s();
  for (int i = 0; i < N; i += 100) {
    for (int k = 0; k < 100; k++)
      kvstore_submit(s, kvreq_get("", "k", 1, count_done, NULL));
    event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
  }
  double batch_ns = (now_s() - t0) * 1e9 / N;
  CHECK(completions == N, "%d of %d completed", completions, N);
  fprintf(stderr, "memory get, 100 bytes: %.0f ns at once (run_now), %.0f ns "
          "answered from the loop one at a time, %.0f ns in batches of 100\n",
          inline_ns, one_ns, batch_ns);
  buf_free(&err);
  storages_free(st);
  event_base_free(base);
}
