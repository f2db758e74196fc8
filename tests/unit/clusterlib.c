/* The cluster's Redis Functions (src/cluster/redislib.lua) against a real
 * redis-server: each function's contract, and above all fencing: a write
 * with an epoch that no longer holds its lease is refused and counted, and
 * the data it would have changed stays as it was. The trimming test is a
 * randomized property test: whatever the commit record holds, trimming
 * never removes an entry that is in it or was not read yet.
 *
 * TGHOST_CLUSTERLIB_SEED=<n> replays one schedule. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster/clusterlib.h"
#include "redisproc.h"

static uint64_t current_seed;
#define CHECK_ON_FAILURE() \
  fprintf(stderr, "  (seed %" PRIu64 ")\n", current_seed)
#include "check.h"
#include "testreg.h"

#define BOT 4242

static struct redisproc server;
static redisContext *rc;

static uint64_t rng_state;
static uint64_t rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dULL;
}

static void seed_rng(void) {
  const char *s = getenv("TGHOST_CLUSTERLIB_SEED");
  current_seed = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL);
  rng_state = current_seed * 2654435761u + 1;
}

/* A key of the bot's cluster, in a static ring of buffers. */
static const char *key(enum clusterlib_key k, int partition) {
  static char ring[16][64];
  static int next;
  char *out = ring[next++ % 16];
  struct buf b = BUF_INIT;
  clusterlib_key(&b, BOT, k, partition);
  snprintf(out, 64, "%s", b.data);
  buf_free(&b);
  return out;
}

static void start(void) {
  redisproc_need();
  seed_rng();
  char dir[] = "/tmp/tghost-clusterlib-XXXXXX";
  CHECK(mkdtemp(dir), "mkdtemp");
  redisproc_start(&server, dir, NULL);
  redisproc_wait(&server, 10000);
  rc = redisproc_connect(&server);
  const char *argv[] = {"FUNCTION", "LOAD", "REPLACE", clusterlib_code};
  size_t lens[] = {8, 4, 7, clusterlib_code_len};
  redisReply *r = redisCommandArgv(rc, 4, argv, lens);
  CHECK(r && r->type == REDIS_REPLY_STRING &&
            strcmp(r->str, CLUSTERLIB_NAME) == 0,
        "FUNCTION LOAD: %s", r ? r->str : rc->errstr);
  freeReplyObject(r);
}

/* FCALL with argv (numkeys keys first, then the arguments). */
static redisReply *fcall(const char *fn, int numkeys, int argc,
                         const char *const *args) {
  const char *argv[512];
  char nk[16];
  CHECK(argc + 3 <= 512, "too many arguments");
  snprintf(nk, sizeof nk, "%d", numkeys);
  argv[0] = "FCALL";
  argv[1] = fn;
  argv[2] = nk;
  for (int i = 0; i < argc; i++) argv[3 + i] = args[i];
  redisReply *r = redisCommandArgv(rc, 3 + argc, argv, NULL);
  CHECK(r, "FCALL %s: %s", fn, rc->errstr);
  return r;
}

static bool is_stale(const redisReply *r) {
  return r->type == REDIS_REPLY_ERROR &&
         strncmp(r->str, CLUSTERLIB_STALE, strlen(CLUSTERLIB_STALE)) == 0;
}

static long long refused(void) {
  redisReply *r = redisproc_cmd(rc, "HGET %s refused", key(CK_STATS, 0));
  long long n = r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
  freeReplyObject(r);
  return n;
}

/* Takes partition p's lease for member: its epoch, or 0 when held. */
static long long acquire(int p, const char *member, int ttl_ms) {
  char ttl[16];
  snprintf(ttl, sizeof ttl, "%d", ttl_ms);
  const char *a[] = {key(CK_LEASE, p), key(CK_EPOCH, p), member, ttl};
  redisReply *r = fcall("tgc_acquire", 2, 4, a);
  CHECK(r->type == REDIS_REPLY_ARRAY && r->elements == 2,
        "acquire answered type %d", r->type);
  long long epoch = r->element[0]->integer ? r->element[1]->integer : 0;
  freeReplyObject(r);
  return epoch;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

/* Ingests n updates (ids from first) into partition p's stream, unfenced;
 * returns how many were added. Keys are "k<id % keys>". */
static long long ingest(int p, int64_t first, int n, int keys) {
  static char store[400][48];
  const char *a[4 + 1 + 400];
  int argc = 0;
  a[argc++] = key(CK_OFFSET, 0);
  a[argc++] = key(CK_SEEN, 0);
  a[argc++] = key(CK_STATS, 0);
  a[argc++] = key(CK_LEASE, CLUSTERLIB_INGRESS);
  a[argc++] = key(CK_STREAM, p);
  a[argc++] = "";
  for (int i = 0; i < n && i < 90; i++) {
    snprintf(store[4 * i], 48, "%" PRId64, first + i);
    snprintf(store[4 * i + 1], 48, "1");
    snprintf(store[4 * i + 2], 48, "k%" PRId64, (first + i) % keys);
    snprintf(store[4 * i + 3], 48, "{\"update_id\":%" PRId64 "}", first + i);
    for (int j = 0; j < 4; j++) a[argc++] = store[4 * i + j];
  }
  redisReply *r = fcall("tgc_ingest", 5, argc, a);
  CHECK(r->type == REDIS_REPLY_ARRAY, "ingest: %s",
        r->type == REDIS_REPLY_ERROR ? r->str : "not an array");
  long long added = r->element[0]->integer;
  freeReplyObject(r);
  return added;
}

/* Stream ids compared as Redis does: ms, then seq. */
static int id_cmp(const char *a, const char *b) {
  unsigned long long ams = strtoull(a, NULL, 10), bms = strtoull(b, NULL, 10);
  unsigned long long aseq = strtoull(strchr(a, '-') + 1, NULL, 10);
  unsigned long long bseq = strtoull(strchr(b, '-') + 1, NULL, 10);
  if (ams != bms) return ams < bms ? -1 : 1;
  return aseq < bseq ? -1 : aseq > bseq;
}

/* The stream ids of partition p, oldest first (up to max). */
static size_t stream_ids(int p, char ids[][32], size_t max) {
  redisReply *r = redisproc_cmd(rc, "XRANGE %s - +", key(CK_STREAM, p));
  size_t n = 0;
  for (size_t i = 0; i < r->elements && n < max; i++)
    snprintf(ids[n++], 32, "%s", r->element[i]->element[0]->str);
  freeReplyObject(r);
  return n;
}

TEST(library_loads) {
  start();
  redisReply *r = fcall("tgc_version", 0, 0, NULL);
  CHECK(r->type == REDIS_REPLY_INTEGER && r->integer == CLUSTERLIB_VERSION,
        "tgc_version answered %lld", r->integer);
  freeReplyObject(r);
  /* The partition count is fixed by the first instance. */
  const char *a[] = {key(CK_META, 0), "64"};
  r = fcall("tgc_setup", 1, 2, a);
  CHECK(r->integer == 64, "setup answered %lld", r->integer);
  freeReplyObject(r);
  const char *b[] = {key(CK_META, 0), "32"};
  r = fcall("tgc_setup", 1, 2, b);
  CHECK(r->integer == 64, "a second setup with 32 answered %lld (the stored "
        "count must win)", r->integer);
  freeReplyObject(r);
}

TEST(lease_epochs_fence_writes) {
  start();
  long long e1 = acquire(0, "m1", 300);
  CHECK(e1 == 1, "first epoch %lld", e1);
  CHECK(acquire(0, "m2", 300) == 0, "a held lease was taken by another");
  char epoch[24];
  snprintf(epoch, sizeof epoch, "%lld", e1);
  /* The owner's writes pass. */
  const char *commit1[] = {key(CK_LEASE, 0), key(CK_COMMIT, 0),
                           key(CK_STATS, 0), epoch, "5-0", "R", "5-0"};
  redisReply *r = fcall("tgc_commit", 3, 7, commit1);
  CHECK(r->type == REDIS_REPLY_INTEGER, "the owner's commit was refused: %s",
        r->type == REDIS_REPLY_ERROR ? r->str : "?");
  freeReplyObject(r);
  const char *kv1[] = {key(CK_LEASE, 0), "sess:1", key(CK_STATS, 0), epoch,
                       "set", "by-m1", "0"};
  r = fcall("tgc_kv", 3, 7, kv1);
  CHECK(r->type == REDIS_REPLY_INTEGER, "the owner's session write failed");
  freeReplyObject(r);

  /* m1 pauses past its lease; m2 takes the partition with a new epoch. */
  sleep_ms(400);
  long long e2 = acquire(0, "m2", 5000);
  CHECK(e2 == e1 + 1, "the new owner's epoch is %lld", e2);

  /* m1 wakes up and writes with its old epoch: every write is refused,
   * counted, and changes nothing. */
  long long before = refused();
  const char *commit2[] = {key(CK_LEASE, 0), key(CK_COMMIT, 0),
                           key(CK_STATS, 0), epoch, "9-0", "D", "5-0"};
  r = fcall("tgc_commit", 3, 7, commit2);
  CHECK(is_stale(r), "a stale commit was accepted");
  freeReplyObject(r);
  const char *kv2[] = {key(CK_LEASE, 0), "sess:1", key(CK_STATS, 0), epoch,
                       "set", "stale", "0"};
  r = fcall("tgc_kv", 3, 7, kv2);
  CHECK(is_stale(r), "a stale session write was accepted");
  freeReplyObject(r);
  const char *trim[] = {key(CK_LEASE, 0), key(CK_COMMIT, 0),
                        key(CK_STREAM, 0), key(CK_STATS, 0), epoch};
  r = fcall("tgc_trim", 4, 5, trim);
  CHECK(is_stale(r), "a stale trim was accepted");
  freeReplyObject(r);
  CHECK(refused() == before + 3, "refused went %lld -> %lld", before,
        refused());
  r = redisproc_cmd(rc, "GET sess:1");
  CHECK(r->type == REDIS_REPLY_STRING && strcmp(r->str, "by-m1") == 0,
        "the session holds '%s' after a refused write", r->str);
  freeReplyObject(r);
  r = redisproc_cmd(rc, "HGETALL %s", key(CK_COMMIT, 0));
  CHECK(r->elements == 4 && strcmp(r->element[1]->str, "5-0") == 0,
        "the commit record changed under a refused write");
  freeReplyObject(r);

  /* Renewing with the old epoch fails; with the new one it works. */
  const char *renew[] = {key(CK_LEASE, 0), "m1", "5000", epoch};
  r = fcall("tgc_renew", 1, 4, renew);
  CHECK(r->elements == 1 && r->element[0]->integer == 0,
        "a stale renewal succeeded");
  freeReplyObject(r);
  char epoch2[24];
  snprintf(epoch2, sizeof epoch2, "%lld", e2);
  const char *renew2[] = {key(CK_LEASE, 0), "m2", "5000", epoch2};
  r = fcall("tgc_renew", 1, 4, renew2);
  CHECK(r->elements == 1 && r->element[0]->integer == 1,
        "the owner could not renew");
  freeReplyObject(r);

  /* A member that takes its own lease again gets a new epoch: what it
   * wrote as its older self no longer passes. */
  long long e3 = acquire(0, "m2", 5000);
  CHECK(e3 == e2 + 1, "re-acquiring gave epoch %lld", e3);
  const char *kv3[] = {key(CK_LEASE, 0), "sess:1", key(CK_STATS, 0), epoch2,
                       "set", "old-self", "0"};
  r = fcall("tgc_kv", 3, 7, kv3);
  CHECK(is_stale(r), "the older self's write was accepted");
  freeReplyObject(r);

  /* Releasing needs the epoch too. */
  const char *rel_old[] = {key(CK_LEASE, 0), "m2", epoch2};
  r = fcall("tgc_release", 1, 3, rel_old);
  CHECK(r->integer == 0, "a stale release removed the lease");
  freeReplyObject(r);
  char epoch3[24];
  snprintf(epoch3, sizeof epoch3, "%lld", e3);
  const char *rel[] = {key(CK_LEASE, 0), "m2", epoch3};
  r = fcall("tgc_release", 1, 3, rel);
  CHECK(r->integer == 1, "the owner could not release");
  freeReplyObject(r);
  CHECK(acquire(0, "m1", 5000) == e3 + 1, "a released lease is not free");
}

TEST(ingest_dedup_and_offset) {
  start();
  CHECK(ingest(3, 100, 10, 5) == 10, "10 new updates were not all added");
  CHECK(ingest(3, 105, 10, 5) == 5, "a batch overlapping the last one "
        "added more than its 5 new updates");
  redisReply *r = redisproc_cmd(rc, "XLEN %s", key(CK_STREAM, 3));
  CHECK(r->integer == 15, "the stream has %lld entries", r->integer);
  freeReplyObject(r);
  r = redisproc_cmd(rc, "GET %s", key(CK_OFFSET, 0));
  CHECK(strcmp(r->str, "115") == 0, "the offset is %s", r->str);
  freeReplyObject(r);

  /* Polling ingest is fenced by the ingress lease, and skips what the
   * offset says was ingested already. */
  long long e = acquire(CLUSTERLIB_INGRESS, "m1", 5000);
  char epoch[24];
  snprintf(epoch, sizeof epoch, "%lld", e);
  const char *a[] = {key(CK_OFFSET, 0), key(CK_SEEN, 0), key(CK_STATS, 0),
                     key(CK_LEASE, CLUSTERLIB_INGRESS), key(CK_STREAM, 3),
                     epoch, "90", "1", "k", "{}", "115", "1", "k", "{}"};
  r = fcall("tgc_ingest", 5, 14, a);
  CHECK(r->type == REDIS_REPLY_ARRAY && r->element[0]->integer == 1 &&
            r->element[1]->integer == 1 &&
            strcmp(r->element[2]->str, "116") == 0,
        "fenced ingest answered %s",
        r->type == REDIS_REPLY_ERROR ? r->str : "an unexpected array");
  freeReplyObject(r);
  const char *stale[] = {key(CK_OFFSET, 0), key(CK_SEEN, 0), key(CK_STATS, 0),
                         key(CK_LEASE, CLUSTERLIB_INGRESS), key(CK_STREAM, 3),
                         "999", "200", "1", "k", "{}"};
  r = fcall("tgc_ingest", 5, 10, stale);
  CHECK(is_stale(r), "an ingest with another epoch was accepted");
  freeReplyObject(r);
  r = redisproc_cmd(rc, "XLEN %s", key(CK_STREAM, 3));
  CHECK(r->integer == 16, "the stream has %lld entries", r->integer);
  freeReplyObject(r);
}

TEST(takeover_replays_in_order) {
  start();
  ingest(0, 1000, 40, 7);
  char ids[64][32];
  size_t n = stream_ids(0, ids, 64);
  CHECK(n == 40, "%zu entries", n);
  long long e = acquire(0, "m1", 5000);
  char epoch[24];
  snprintf(epoch, sizeof epoch, "%lld", e);
  /* Read all 40 into the record; admit 0..19 (0..4 once more, as isolated
   * runs: twice); finish the even ones of 0..19. */
  const char *a[3 + 2 + 2 * 90];
  int argc = 0;
  a[argc++] = key(CK_LEASE, 0);
  a[argc++] = key(CK_COMMIT, 0);
  a[argc++] = key(CK_STATS, 0);
  a[argc++] = epoch;
  a[argc++] = ids[n - 1];
  for (size_t i = 0; i < n; i++) {
    a[argc++] = i < 20 ? "A" : "R";
    a[argc++] = ids[i];
  }
  redisReply *r = fcall("tgc_commit", 3, argc, a);
  CHECK(r->type == REDIS_REPLY_INTEGER, "commit refused");
  freeReplyObject(r);
  argc = 5;
  for (size_t i = 0; i < 20; i++) {
    a[argc++] = i < 5 ? "I" : (i % 2 == 0 ? "D" : "R");
    a[argc++] = ids[i];
  }
  for (size_t i = 0; i < 5; i++) {
    a[argc++] = "I";
    a[argc++] = ids[i];
  }
  /* 5 once more, and that admission undone (released unstarted). */
  a[argc++] = "I";
  a[argc++] = ids[5];
  a[argc++] = "V";
  a[argc++] = ids[5];
  r = fcall("tgc_commit", 3, argc, a);
  freeReplyObject(r);

  /* m1 dies; m2 takes over with max_attempts 2: 0..4 (isolated runs
   * twice) become dead letters, the rest comes back in stream order. */
  freeReplyObject(redisproc_cmd(rc, "DEL %s", key(CK_LEASE, 0)));
  long long e2 = acquire(0, "m2", 5000);
  char epoch2[24];
  snprintf(epoch2, sizeof epoch2, "%lld", e2);
  const char *t[] = {key(CK_LEASE, 0), key(CK_COMMIT, 0), key(CK_STREAM, 0),
                     key(CK_DEAD, 0), key(CK_STATS, 0), epoch2, "0", "2"};
  r = fcall("tgc_takeover", 5, 8, t);
  CHECK(r->type == REDIS_REPLY_ARRAY && r->elements == 3, "takeover: %s",
        r->type == REDIS_REPLY_ERROR ? r->str : "not {hwm, dead, entries}");
  CHECK(strcmp(r->element[0]->str, ids[n - 1]) == 0, "hwm %s",
        r->element[0]->str);
  CHECK(r->element[1]->elements == 5, "%zu dead letters",
        r->element[1]->elements);
  for (size_t i = 0; i < 5; i++)
    CHECK(atoll(r->element[1]->element[i]->str) == 1000 + (long long)i,
          "dead letter %zu is update %s", i, r->element[1]->element[i]->str);
  redisReply *entries = r->element[2];
  /* Left: the odd ones of 5..19 (admitted once) and 20..39 (read). */
  CHECK(entries->elements == 8 + 20, "%zu entries to resume",
        entries->elements);
  size_t at = 0;
  for (size_t i = 5; i < n; i++) {
    if (i < 20 && i % 2 == 0) continue;
    redisReply *en = entries->element[at++];
    CHECK(strcmp(en->element[0]->str, ids[i]) == 0,
          "entry %zu is %s, expected %s (stream order)", at - 1,
          en->element[0]->str, ids[i]);
    CHECK(en->element[1]->integer == (i < 20 ? 1 : 0), "attempts %lld",
          en->element[1]->integer);
    CHECK(en->element[2]->integer == 0, "isolated runs %lld (entry %zu)",
          en->element[2]->integer, i);
    CHECK(atoll(en->element[3]->str) == 1000 + (long long)i, "update %s",
          en->element[3]->str);
    char k[16], j[64];
    snprintf(k, sizeof k, "k%zu", (1000 + i) % 7);
    snprintf(j, sizeof j, "{\"update_id\":%zu}", 1000 + i);
    CHECK(strcmp(en->element[4]->str, k) == 0 &&
              strcmp(en->element[5]->str, j) == 0,
          "key %s json %s", en->element[4]->str, en->element[5]->str);
  }
  freeReplyObject(r);
  r = redisproc_cmd(rc, "XLEN %s", key(CK_DEAD, 0));
  CHECK(r->integer == 5, "%lld dead letters stored", r->integer);
  freeReplyObject(r);
  /* A takeover with the old epoch is refused. */
  const char *t2[] = {key(CK_LEASE, 0), key(CK_COMMIT, 0), key(CK_STREAM, 0),
                      key(CK_DEAD, 0), key(CK_STATS, 0), epoch, "0", "2"};
  r = fcall("tgc_takeover", 5, 8, t2);
  CHECK(is_stale(r), "a stale takeover was accepted");
  freeReplyObject(r);
}

TEST(trim_keeps_unfinished) {
  start();
  long long e = acquire(1, "m1", 60000);
  char epoch[24];
  snprintf(epoch, sizeof epoch, "%lld", e);
  int64_t next_id = 1;
  for (int round = 0; round < 60; round++) {
    int batch = 1 + (int)(rnd() % 40);
    ingest(1, next_id, batch, 1 + (int)(rnd() % 5));
    next_id += batch;
    char ids[2048][32];
    size_t n = stream_ids(1, ids, 2048);
    /* Read a random prefix of what is there into the record, finish a
     * random part of the record. */
    redisReply *hw = redisproc_cmd(rc, "HGET %s hwm", key(CK_COMMIT, 1));
    char hwm[32] = "";
    if (hw->type == REDIS_REPLY_STRING) snprintf(hwm, sizeof hwm, "%s", hw->str);
    freeReplyObject(hw);
    size_t first_unread = 0;
    while (first_unread < n && hwm[0] && id_cmp(ids[first_unread], hwm) <= 0)
      first_unread++;
    size_t read_to = first_unread + rnd() % (n - first_unread + 1);
    if (read_to > first_unread + 80) read_to = first_unread + 80;
    const char *a[8 + 2 * 90];
    int argc = 0;
    a[argc++] = key(CK_LEASE, 1);
    a[argc++] = key(CK_COMMIT, 1);
    a[argc++] = key(CK_STATS, 0);
    a[argc++] = epoch;
    a[argc++] = read_to > 0 ? ids[read_to - 1] : "";
    for (size_t i = first_unread; i < read_to; i++) {
      static const char *const ops[] = {"A", "R", "I"};
      a[argc++] = ops[rnd() % 3];
      a[argc++] = ids[i];
    }
    redisReply *r = fcall("tgc_commit", 3, argc, a);
    CHECK(r->type == REDIS_REPLY_INTEGER, "commit: %s",
          r->type == REDIS_REPLY_ERROR ? r->str : "?");
    freeReplyObject(r);
    argc = 5;
    a[4] = "";
    for (size_t i = 0; i < read_to && argc < 5 + 2 * 80; i++) {
      if (rnd() % 3 == 0) {
        a[argc++] = "D";
        a[argc++] = ids[i];
      }
    }
    r = fcall("tgc_commit", 3, argc, a);
    freeReplyObject(r);

    /* The record and the unread entries before the trim ... */
    redisReply *rec = redisproc_cmd(rc, "HGETALL %s", key(CK_COMMIT, 1));
    hw = redisproc_cmd(rc, "HGET %s hwm", key(CK_COMMIT, 1));
    const char *t[] = {key(CK_LEASE, 1), key(CK_COMMIT, 1), key(CK_STREAM, 1),
                       key(CK_STATS, 0), epoch};
    r = fcall("tgc_trim", 4, 5, t);
    CHECK(r->type == REDIS_REPLY_INTEGER, "trim: %s",
          r->type == REDIS_REPLY_ERROR ? r->str : "?");
    freeReplyObject(r);
    /* ... are all still in the stream after it. */
    char after[2048][32];
    size_t m = stream_ids(1, after, 2048);
    for (size_t i = 0; i + 1 < rec->elements; i += 2) {
      if (strcmp(rec->element[i]->str, "hwm") == 0 ||
          strncmp(rec->element[i]->str, "i:", 2) == 0)
        continue;
      bool found = false;
      for (size_t j = 0; j < m && !found; j++)
        found = strcmp(after[j], rec->element[i]->str) == 0;
      CHECK(found, "round %d: trimming removed %s, which is in the commit "
            "record", round, rec->element[i]->str);
    }
    for (size_t i = 0; i < n; i++) {
      bool unread = hw->type != REDIS_REPLY_STRING ||
                    id_cmp(ids[i], hw->str) > 0;
      if (!unread) continue;
      bool found = false;
      for (size_t j = 0; j < m && !found; j++)
        found = strcmp(after[j], ids[i]) == 0;
      CHECK(found, "round %d: trimming removed %s, which was not read yet",
            round, ids[i]);
    }
    freeReplyObject(rec);
    freeReplyObject(hw);
  }
  /* Everything finished: the stream is trimmed to what is unread. */
  char ids[2048][32];
  size_t n = stream_ids(1, ids, 2048);
  CHECK(n < (size_t)next_id, "trimming never removed anything");
}

TEST(membership) {
  start();
  const char *a[] = {key(CK_MEMBERS, 0), "m1", "300"};
  redisReply *r = fcall("tgc_heartbeat", 1, 3, a);
  CHECK(r->elements == 1, "%zu members", r->elements);
  freeReplyObject(r);
  const char *b[] = {key(CK_MEMBERS, 0), "m2", "5000"};
  r = fcall("tgc_heartbeat", 1, 3, b);
  CHECK(r->elements == 2, "%zu members after m2 joined", r->elements);
  freeReplyObject(r);
  sleep_ms(400);
  r = fcall("tgc_heartbeat", 1, 3, b);
  CHECK(r->elements == 1 && strcmp(r->element[0]->str, "m2") == 0,
        "m1 stopped beating and is still a member");
  freeReplyObject(r);
  const char *c[] = {key(CK_MEMBERS, 0), "m2"};
  r = fcall("tgc_leave", 1, 2, c);
  freeReplyObject(r);
  r = redisproc_cmd(rc, "ZCARD %s", key(CK_MEMBERS, 0));
  CHECK(r->integer == 0, "m2 left and is still a member");
  freeReplyObject(r);
}

TEST(fenced_compare_and_set) {
  start();
  long long e = acquire(2, "m1", 5000);
  char epoch[24];
  snprintf(epoch, sizeof epoch, "%lld", e);
  const char *a[] = {key(CK_LEASE, 2), "s", key(CK_STATS, 0), epoch, "cas",
                     "0", "", "1", "v1", "0"};
  redisReply *r = fcall("tgc_kv", 3, 10, a);
  CHECK(r->elements == 1 && r->element[0]->integer == 1,
        "CAS on an absent key did not swap");
  freeReplyObject(r);
  r = fcall("tgc_kv", 3, 10, a);
  CHECK(r->elements == 2 && r->element[0]->integer == 0 &&
            strcmp(r->element[1]->str, "v1") == 0,
        "CAS expecting absence swapped a present key");
  freeReplyObject(r);
  const char *b[] = {key(CK_LEASE, 2), "s", key(CK_STATS, 0), epoch, "cas",
                     "1", "v1", "1", "v2", "100"};
  r = fcall("tgc_kv", 3, 10, b);
  CHECK(r->element[0]->integer == 1, "CAS v1 -> v2 did not swap");
  freeReplyObject(r);
  r = redisproc_cmd(rc, "PTTL s");
  CHECK(r->integer > 0 && r->integer <= 100, "ttl %lld", r->integer);
  freeReplyObject(r);
  const char *d[] = {key(CK_LEASE, 2), "s", key(CK_STATS, 0), epoch, "del"};
  r = fcall("tgc_kv", 3, 5, d);
  freeReplyObject(r);
  r = redisproc_cmd(rc, "EXISTS s");
  CHECK(r->integer == 0, "del left the key");
  freeReplyObject(r);
}
