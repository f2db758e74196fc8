#include "cluster/ingress.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/metrics.h"
#include "cluster/clusterkey.h"
#include "cluster/clusterlib.h"
#include "pipeline/polling.h"
#include "pipeline/webhook.h"

/* A failed ingest is sent again after this long, doubling up to the max. */
#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 2000
/* getUpdates conflicts (409) in a row a holder sits out before it gives
 * up: one is normal when the lease changes hands (the last holder's poll
 * may still be open); many mean another deployment polls this bot. */
#define MAX_CONFLICTS 10

struct ingress {
  struct update_source_params params;   /* opts points at our copy */
  struct run_options opts;
  struct redisconn *cmd;
  int partitions;
  struct ingress_events ev;
  void *ud;
  int64_t bot_id;
  char offset_key[64], seen_key[64], stats_key[64], lease_key[64];
  char *stream_keys;                    /* partitions x 64 */
  bool webhook;
  struct update_source *inner;          /* polling: while holding */
  long long epoch;                      /* 0: not the holder */
  struct qlist batch;                   /* being ingested */
  bool ingesting;
  bool stopping, stopped;
  long retry_ms;
  bool warned;                          /* the outage line was logged */
  struct event *retry_timer;
  struct event *restart_timer;          /* after a getUpdates conflict */
  int conflicts;
  struct buf key;
};

static const char *stream_key(struct ingress *g, int p) {
  return g->stream_keys + (size_t)p * 64;
}

static void send_ingest(struct ingress *g);
static void fetch_more(struct ingress *g);

/* --- the inner source's events ------------------------------------------ */

static void on_inner_batch(void *ud, struct qlist *batch, const char *via) {
  (void)via;
  struct ingress *g = ud;
  struct qnode *n;
  while ((n = qlist_pop_front(batch))) qlist_push_back(&g->batch, n);
  if (!g->ingesting && !qlist_empty(&g->batch)) send_ingest(g);
}

static void on_inner_ready(void *ud) { fetch_more(ud); }

static void drop_inner(struct ingress *g) {
  if (!g->inner || g->webhook) return;
  source_abort(g->inner);
  source_free(g->inner);
  g->inner = NULL;
}

static void on_restart(evutil_socket_t fd, short what, void *arg);

static void on_inner_fatal(void *ud, const char *message) {
  struct ingress *g = ud;
  /* Another poller: at a hand-over, the last holder's long poll may
   * still be open for a moment. Sit it out, a few times. */
  if (!g->webhook && strstr(message, "409 Conflict") &&
      strstr(message, "Another instance is polling") &&
      ++g->conflicts <= MAX_CONFLICTS) {
    log_warn("cluster: getUpdates conflicted with another poller (%d of %d "
             "in a row; normal once when the ingress lease changes hands): "
             "polling again shortly", g->conflicts, MAX_CONFLICTS);
    update_batch_free(&g->batch);
    drop_inner(g);
    struct timeval tv = {1, 0};
    evtimer_add(g->restart_timer, &tv);
    return;
  }
  g->ev.on_fatal(g->ud, message);
}

static void on_inner_stopped(void *ud) {
  struct ingress *g = ud;
  if (g->stopped) return;
  g->stopped = true;
  g->ev.on_stopped(g->ud);
}

static const struct update_source_events inner_events = {
    on_inner_batch, on_inner_ready, on_inner_fatal, on_inner_stopped, NULL};

/* --- ingesting ------------------------------------------------------------ */

/* The update's cluster key into g->key: the script's, else the default. */
static void key_of(struct ingress *g, const struct update_item *u) {
  buf_reset(&g->key);
  if (g->params.script_key) {
    struct buf err = BUF_INIT;
    int r = g->params.script_key(g->params.script_key_ud, u->json, u->len,
                                 &g->key, &err);
    if (r == 1) {
      buf_free(&err);
      return;
    }
    if (r < 0) {
      struct log_fields f = {-1, u->id};
      log_msg(LOG_WARN, &f, "cluster.key failed: %s; the update goes by its "
              "default key (chat, user or update)", err.data);
    }
    buf_free(&err);
    buf_reset(&g->key);
  }
  if (clusterkey_default(u->json, u->len, &g->key) == CLUSTERKEY_INVALID) {
    buf_reset(&g->key);
    clusterkey_of_update_id(u->id, &g->key);
  }
}

static void on_ingest(struct redisconn *c, const redisReply *rep,
                      const char *error, void *ud);

static void send_ingest(struct ingress *g) {
  size_t n = qlist_size(&g->batch);
  /* Keys: offset, seen, stats, the ingress lease, then one stream per
   * partition the batch touches; arguments: the epoch, then per update
   * its id, its stream's index among the keys, its key and its JSON. */
  int *index_of = xcalloc((size_t)g->partitions, sizeof *index_of);
  const char **argv = xcalloc(3 + 4 + n + 1 + 4 * n, sizeof *argv);
  size_t *lens = xcalloc(3 + 4 + n + 1 + 4 * n, sizeof *lens);
  char *numbers = xcalloc(n, 48);
  char **keys = xcalloc(n, sizeof *keys);
  size_t nstreams = 0;
  struct update_item **items = xcalloc(n, sizeof *items);
  size_t i = 0;
  qlist_foreach(q, &g->batch) items[i++] = qlist_entry(q, struct update_item,
                                                        node);
  int *part = xcalloc(n, sizeof *part);
  for (i = 0; i < n; i++) {
    key_of(g, items[i]);
    keys[i] = buf_steal(&g->key, NULL);
    if (!keys[i]) keys[i] = xstrdup("");
    part[i] = clusterkey_partition(keys[i], strlen(keys[i]), g->partitions);
    if (!index_of[part[i]]) index_of[part[i]] = (int)++nstreams;
  }
  size_t argc = 0;
  char nkeys[16], epoch[24];
  snprintf(nkeys, sizeof nkeys, "%zu", 4 + nstreams);
  snprintf(epoch, sizeof epoch, "%lld", g->webhook ? 0LL : g->epoch);
#define ARG(s, l) (argv[argc] = (s), lens[argc++] = (l))
#define STR(s) ARG((s), strlen(s))
  STR("FCALL");
  STR("tgc_ingest");
  STR(nkeys);
  STR(g->offset_key);
  STR(g->seen_key);
  STR(g->stats_key);
  STR(g->lease_key);
  for (int p = 0; p < g->partitions; p++)
    if (index_of[p]) argv[argc - 1 + (size_t)index_of[p]] = stream_key(g, p),
                     lens[argc - 1 + (size_t)index_of[p]] =
                         strlen(stream_key(g, p));
  argc += nstreams;
  if (g->webhook) ARG("", 0);
  else STR(epoch);
  for (i = 0; i < n; i++) {
    char *id = numbers + i * 48, *idx = id + 24;
    snprintf(id, 24, "%" PRId64, items[i]->id);
    snprintf(idx, 24, "%d", index_of[part[i]]);
    STR(id);
    STR(idx);
    STR(keys[i]);
    ARG(items[i]->json, items[i]->len);
  }
#undef STR
#undef ARG
  g->ingesting = true;
  redisconn_command(g->cmd, (int)argc, argv, lens, on_ingest, g);
  for (i = 0; i < n; i++) free(keys[i]);
  free(keys);
  free(numbers);
  free(argv);
  free(lens);
  free(index_of);
  free(items);
  free(part);
}

static void on_retry(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  ingress_retry(arg);
}

static void on_ingest(struct redisconn *c, const redisReply *rep,
                      const char *error, void *ud) {
  (void)c;
  if (!rep && !error) return;   /* teardown */
  struct ingress *g = ud;
  g->ingesting = false;
  if (rep && rep->type == REDIS_REPLY_ERROR &&
      strncmp(rep->str, CLUSTERLIB_STALE, strlen(CLUSTERLIB_STALE)) == 0) {
    /* Another instance holds the ingress lease now: what this one fetched
     * is not confirmed, and Telegram sends it to the new holder. */
    metric_inc(METRIC_CLUSTER_FENCED_REFUSED, "ingest", NULL);
    update_batch_free(&g->batch);
    g->ev.on_refused(g->ud);
    return;
  }
  if (error || rep->type != REDIS_REPLY_ARRAY || rep->elements != 3) {
    const char *why = error ? error
                      : rep->type == REDIS_REPLY_ERROR ? rep->str
                                                       : "unexpected answer";
    if (!g->warned)
      log_warn("cluster: updates cannot be stored in Redis (%s): nothing is "
               "confirmed to Telegram, which keeps them; retrying", why);
    g->warned = true;
    if (g->epoch || g->webhook) {
      struct timeval tv = {g->retry_ms / 1000, (g->retry_ms % 1000) * 1000};
      evtimer_add(g->retry_timer, &tv);
      g->retry_ms = g->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS
                                                    : g->retry_ms * 2;
    } else {
      update_batch_free(&g->batch);
    }
    return;
  }
  if (g->warned) log_info("cluster: updates are stored in Redis again");
  g->warned = false;
  g->retry_ms = RETRY_MIN_MS;
  g->conflicts = 0;
  metric_add(METRIC_CLUSTER_INGESTED, (double)rep->element[0]->integer,
             "added", NULL);
  metric_add(METRIC_CLUSTER_INGESTED, (double)rep->element[1]->integer,
             "duplicate", NULL);
  update_batch_free(&g->batch);
  /* In Redis: the inner source may let go (the next poll confirms it, the
   * webhook answers 200). */
  if (g->inner) source_accept(g->inner);
  if (g->stopping && g->inner) {
    source_drained(g->inner);
    return;
  }
  fetch_more(g);
}

static void fetch_more(struct ingress *g) {
  if (!g->inner || g->ingesting || g->stopping) return;
  if (!qlist_empty(&g->batch)) {
    send_ingest(g);
    return;
  }
  source_fetch(g->inner, 100);
}

/* --- the public side ------------------------------------------------------ */

static void start_polling(struct ingress *g, int64_t offset) {
  struct buf err = BUF_INIT;
  g->inner = polling_new(&g->params, &inner_events, g, &err);
  if (!g->inner) {
    g->ev.on_fatal(g->ud, err.data);
    buf_free(&err);
    return;
  }
  if (offset > 0) {
    int64_t last = offset - 1;
    source_known(g->inner, &last, 1);
  }
  source_start(g->inner);
  fetch_more(g);
}

static void on_offset(struct redisconn *c, const redisReply *rep,
                      const char *error, void *ud) {
  (void)c;
  if (!rep && !error) return;
  struct ingress *g = ud;
  if (!g->epoch || g->inner || g->stopping) return;
  if (error || (rep->type != REDIS_REPLY_STRING &&
                rep->type != REDIS_REPLY_NIL)) {
    struct timeval tv = {0, RETRY_MIN_MS * 1000};
    evtimer_add(g->retry_timer, &tv);
    return;
  }
  int64_t offset = rep->type == REDIS_REPLY_STRING ? strtoll(rep->str, NULL, 10)
                                                   : 0;
  log_info("cluster: this instance polls Telegram (ingress lease, epoch "
           "%lld), from offset %" PRId64, g->epoch, offset);
  start_polling(g, offset);
}

static void ask_offset(struct ingress *g) {
  const char *argv[] = {"GET", g->offset_key};
  redisconn_command(g->cmd, 2, argv, NULL, on_offset, g);
}

static void on_restart(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  struct ingress *g = arg;
  if (g->epoch && !g->inner && !g->stopping) ask_offset(g);
}

struct ingress *ingress_new(const struct update_source_params *p,
                            struct redisconn *cmd, int partitions,
                            const struct ingress_events *ev, void *ud,
                            struct buf *err) {
  struct ingress *g = xcalloc(1, sizeof *g);
  run_options_copy(&g->opts, p->opts);
  g->params = *p;
  g->params.opts = &g->opts;
  g->cmd = cmd;
  g->partitions = partitions;
  g->ev = *ev;
  g->ud = ud;
  g->bot_id = p->bot_id;
  g->retry_ms = RETRY_MIN_MS;
  qlist_init(&g->batch);
  struct buf k = BUF_INIT;
#define KEY(field, which, part)                            \
  do {                                                     \
    buf_reset(&k);                                         \
    clusterlib_key(&k, p->bot_id, which, part);            \
    snprintf(field, sizeof field, "%s", k.data);           \
  } while (0)
  KEY(g->offset_key, CK_OFFSET, 0);
  KEY(g->seen_key, CK_SEEN, 0);
  KEY(g->stats_key, CK_STATS, 0);
  KEY(g->lease_key, CK_LEASE, CLUSTERLIB_INGRESS);
#undef KEY
  g->stream_keys = xcalloc((size_t)partitions, 64);
  for (int i = 0; i < partitions; i++) {
    buf_reset(&k);
    clusterlib_key(&k, p->bot_id, CK_STREAM, i);
    snprintf(g->stream_keys + (size_t)i * 64, 64, "%s", k.data);
  }
  buf_free(&k);
  g->retry_timer = evtimer_new(p->base, on_retry, g);
  g->restart_timer = evtimer_new(p->base, on_restart, g);
  g->webhook = p->opts->webhook_url != NULL;
  if (g->webhook) {
    if (!p->opts->webhook_secret_file) {
      buf_append_str(err, "a cluster's webhook needs --webhook-secret-file "
                          "(or webhook.secretFile): every instance must "
                          "check the secret the one that calls setWebhook "
                          "sets");
      ingress_free(g);
      return NULL;
    }
    g->inner = webhook_source_entry.create(&g->params, &inner_events, g, err);
    if (!g->inner) {
      ingress_free(g);
      return NULL;
    }
  }
  return g;
}

void ingress_free(struct ingress *g) {
  if (!g) return;
  if (g->inner) source_free(g->inner);
  update_batch_free(&g->batch);
  event_free(g->retry_timer);
  event_free(g->restart_timer);
  run_options_free(&g->opts);
  buf_free(&g->key);
  free(g->stream_keys);
  free(g);
}

bool ingress_is_webhook(const struct ingress *g) { return g->webhook; }

void ingress_take(struct ingress *g, long long epoch) {
  if (g->stopping) return;
  g->epoch = epoch;
  metric_set(METRIC_CLUSTER_INGRESS_HOLDER, 1, NULL, NULL);
  if (g->webhook) {
    log_info("cluster: this instance holds the ingress lease (epoch %lld): "
             "it sets the webhook", epoch);
    source_start(g->inner);
    fetch_more(g);
    return;
  }
  g->conflicts = 0;
  ask_offset(g);
}

void ingress_drop(struct ingress *g) {
  if (!g->epoch) return;
  g->epoch = 0;
  metric_set(METRIC_CLUSTER_INGRESS_HOLDER, 0, NULL, NULL);
  evtimer_del(g->restart_timer);
  if (g->webhook) return;
  /* Nothing fetched is confirmed: the next holder gets it from Telegram. */
  update_batch_free(&g->batch);
  drop_inner(g);
}

void ingress_stop(struct ingress *g) {
  if (g->stopping) return;
  g->stopping = true;
  evtimer_del(g->restart_timer);
  if (!g->inner) {
    g->stopped = true;
    g->ev.on_stopped(g->ud);
    return;
  }
  source_stop(g->inner);
  /* The batch being stored finishes first (then its poll confirms it). */
  if (g->ingesting) return;
  update_batch_free(&g->batch);
  source_drained(g->inner);
}

void ingress_reconfigure(struct ingress *g, const struct run_options *o) {
  run_options_free(&g->opts);
  run_options_copy(&g->opts, o);
  if (g->inner) source_reconfigure(g->inner, &g->opts);
}

void ingress_retry(struct ingress *g) {
  if (g->ingesting) return;
  if (!qlist_empty(&g->batch) && (g->epoch || g->webhook)) {
    send_ingest(g);
    return;
  }
  if (g->epoch && !g->inner && !g->webhook && !g->stopping) {
    ask_offset(g);
    return;
  }
  fetch_more(g);
}
