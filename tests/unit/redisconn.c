/* Unit tests of the Redis connection's URLs (src/store/redisconn.c):
 * the forms users write, each part decoded, what is refused and why, and
 * a randomized property: any password, percent-encoded, reads back byte
 * for byte, and never appears in the store's name or in an error.
 *
 * TGHOST_REDISCONN_SEED=<n> replays one schedule. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/redisconn.h"

static uint64_t current_seed;
#define CHECK_ON_FAILURE() \
  fprintf(stderr, "  (seed %" PRIu64 ")\n", current_seed)
#include "check.h"
#include "testreg.h"

static bool same(const char *a, const char *b) {
  return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

struct want {
  const char *url;
  const char *host, *socket_path, *user, *password, *name;
  int port;
  long db;
};

static void expect_parse(const struct want *w) {
  struct redis_target t;
  struct buf err = BUF_INIT;
  CHECK(redis_target_parse(w->url, &t, &err) == 0, "%s refused: %s", w->url,
        err.data);
  CHECK(same(t.host, w->host), "%s: host %s", w->url, t.host);
  CHECK(same(t.socket_path, w->socket_path), "%s: socket %s", w->url,
        t.socket_path);
  CHECK(same(t.user, w->user), "%s: user %s", w->url, t.user);
  CHECK(same(t.password, w->password), "%s: password %s", w->url, t.password);
  CHECK(same(t.name, w->name), "%s: name %s", w->url, t.name);
  CHECK(t.port == w->port, "%s: port %d", w->url, t.port);
  CHECK(t.db == w->db, "%s: db %ld", w->url, t.db);
  redis_target_free(&t);
  buf_free(&err);
}

TEST(urls_read) {
  static const struct want cases[] = {
      {"redis://127.0.0.1:6379", "127.0.0.1", NULL, NULL, NULL,
       "redis://127.0.0.1:6379", 6379, 0},
      {"redis://localhost", "localhost", NULL, NULL, NULL,
       "redis://localhost:6379", 6379, 0},
      {"REDIS://Host:7000/3", "Host", NULL, NULL, NULL, "redis://Host:7000/3",
       7000, 3},
      {"redis://h?db=5", "h", NULL, NULL, NULL, "redis://h:6379/5", 6379, 5},
      {"redis://h/5?db=5", "h", NULL, NULL, NULL, "redis://h:6379/5", 6379, 5},
      {"redis://h:1/", "h", NULL, NULL, NULL, "redis://h:1", 1, 0},
      /* Passwords percent-encoded, users for ACL AUTH. */
      {"redis://:p%40ss%3Aw%2Frd@host:7/3", "host", NULL, NULL, "p@ss:w/rd",
       "redis://host:7/3", 7, 3},
      {"redis://alice:s3cr%25t@[::1]:6380/2", "::1", NULL, "alice", "s3cr%t",
       "redis://[::1]:6380/2", 6380, 2},
      {"redis://secret@host", "host", NULL, NULL, "secret",
       "redis://host:6379", 6379, 0},
      {"redis://al%20ice:pw@host", "host", NULL, "al ice", "pw",
       "redis://host:6379", 6379, 0},
      /* Unix sockets. */
      {"unix:///run/redis/redis.sock", NULL, "/run/redis/redis.sock", NULL,
       NULL, "unix:///run/redis/redis.sock", 0, 0},
      {"unix:///tmp/r.sock?db=2", NULL, "/tmp/r.sock", NULL, NULL,
       "unix:///tmp/r.sock?db=2", 0, 2},
      {"unix://:pw@/tmp/r.sock", NULL, "/tmp/r.sock", NULL, "pw",
       "unix:///tmp/r.sock", 0, 0},
      {"unix://alice:p%3Aw@/tmp/re%20dis.sock?db=1", NULL, "/tmp/re dis.sock",
       "alice", "p:w", "unix:///tmp/re dis.sock?db=1", 0, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    expect_parse(&cases[i]);
}

TEST(urls_refused) {
  static const struct {
    const char *url, *why;
  } cases[] = {
      {"http://x", "expected a URL redis://"},
      {"redis://", "no host"},
      {"redis://host:99999", "bad port"},
      {"redis://host:0", "bad port"},
      {"redis://host/x", "bad database number"},
      {"redis://host/1/2", "bad database number"},
      {"redis://host/2?db=3", "two database numbers"},
      {"redis://host?db=x", "expected ?db=N"},
      {"redis://host?dbb=1", "unknown URL parameter \"dbb\" (known: db)"},
      {"redis://:p@ss@host", "must be percent-encoded"},
      {"redis://host#x", "fragment"},
      {"rediss://host", "TLS"},
      {"unix://relative.sock", "expected an absolute socket path"},
      {"unix://host/tmp/r.sock", "expected an absolute socket path"},
      {"unix:///", "expected an absolute socket path"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    struct redis_target t;
    struct buf err = BUF_INIT;
    CHECK(redis_target_parse(cases[i].url, &t, &err) != 0, "%s accepted",
          cases[i].url);
    CHECK(err.data && strstr(err.data, cases[i].why), "%s: '%s' lacks '%s'",
          cases[i].url, err.data, cases[i].why);
    buf_free(&err);
  }
  char long_path[200];
  memset(long_path, 'x', sizeof long_path);
  memcpy(long_path, "unix:///", 8);
  long_path[sizeof long_path - 1] = '\0';
  struct redis_target t;
  struct buf err = BUF_INIT;
  CHECK(redis_target_parse(long_path, &t, &err) != 0 &&
            strstr(err.data, "longer than"),
        "a socket path past sun_path: %s", err.data);
  buf_free(&err);
}

static uint64_t rng_state;
static uint64_t rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dULL;
}

/* Any password of printable bytes, percent-encoded (every byte, or only
 * those that need it), reads back exactly; the name and the messages of
 * URLs refused for another reason never hold it. */
TEST(passwords_round_trip_and_stay_secret) {
  const char *env = getenv("TGHOST_REDISCONN_SEED");
  uint64_t first = env ? strtoull(env, NULL, 10) : 1, n = env ? 1 : 500;
  for (uint64_t seed = first; seed < first + n; seed++) {
    current_seed = seed;
    rng_state = seed * 0x9e3779b97f4a7c15ULL + 1;
    char pw[40], enc[130];
    size_t len = 8 + rnd() % 24, e = 0;
    bool encode_all = rnd() % 2;
    for (size_t i = 0; i < len; i++) {
      pw[i] = (char)(33 + rnd() % 94);   /* '!'..'~' */
      unsigned char c = (unsigned char)pw[i];
      bool plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                          "0123456789-._~", c) != NULL;
      if (plain && !encode_all) enc[e++] = (char)c;
      else e += (size_t)snprintf(enc + e, 4, "%%%02X", c);
    }
    pw[len] = '\0';
    enc[e] = '\0';
    const char *forms[] = {"redis://user:%s@host:6379/1",
                           "unix://:%s@/tmp/redis.sock?db=1"};
    for (size_t f = 0; f < 2; f++) {
      char url[256];
      snprintf(url, sizeof url, forms[f], enc);
      struct redis_target t;
      struct buf err = BUF_INIT;
      CHECK(redis_target_parse(url, &t, &err) == 0, "%s refused: %s", url,
            err.data);
      CHECK(strcmp(t.password, pw) == 0, "%s: password '%s', expected '%s'",
            url, t.password, pw);
      CHECK(!strstr(t.name, pw) && !strstr(t.name, enc), "the name %s holds "
            "the password", t.name);
      redis_target_free(&t);
      /* The same URL with something else wrong. */
      snprintf(url, sizeof url, f ? "unix://:%s@/tmp/r.sock?db=x"
                                  : "redis://:%s@host:99999", enc);
      CHECK(redis_target_parse(url, &t, &err) != 0, "%s accepted", url);
      CHECK(!strstr(err.data, pw) && !strstr(err.data, enc),
            "the message '%s' holds the password", err.data);
      buf_free(&err);
    }
  }
}
