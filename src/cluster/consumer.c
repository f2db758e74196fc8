#include "cluster/consumer.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/hashmap.h"
#include "base/log.h"
#include "base/metrics.h"
#include "cluster/clusterlib.h"
#include "pipeline/seqmap.h"

/* Entries read ahead and not admitted yet, at most (over all partitions):
 * what a read asks for stays within this. */
#define READ_AHEAD 1000
/* Entries one XREAD takes from one stream at most. */
#define READ_COUNT 100
/* A failed record write or read is tried again this much later (the
 * connection reconnects on its own meanwhile). */
#define RETRY_MS 250
/* Trim a partition's stream after this many finished entries, or once a
 * while when fewer finished. */
#define TRIM_EVERY 500
#define TRIM_INTERVAL_MS 2000
/* Admissions without an end (owners lost while it ran) that make an
 * update a suspect. */
#define SUSPECT_AFTER 2

enum pstate {
  PS_FREE,         /* not ours */
  PS_TAKING_OVER,  /* tgc_takeover in flight */
  PS_OWNED,        /* reading, admitting */
  PS_DRAINING,     /* moving away: letting what runs finish */
  PS_DRAINED,      /* drained and written; the lease is being released */
  PS_LOST,         /* the lease is gone; waiting for its updates to end */
  PS_STOPPING,     /* a graceful stop: the runner drains it */
};

enum estate {
  ES_GATED,        /* behind an earlier update of its key */
  ES_READY,        /* at the head of its key, waiting to be admitted */
  ES_ADMITTING,    /* "A" written (or being written) ahead */
  ES_IN_SINK,      /* delivered to the runner */
};

struct part;

struct centry {
  struct hashmap_node node;     /* by update id (its 8 bytes) */
  int64_t id;
  struct part *part;
  unsigned gen;                 /* the partition's ownership it belongs to */
  char sid[32];                 /* stream entry id */
  char *key;                    /* cluster key */
  size_t key_len;
  char *json;
  size_t len;
  int attempts;                 /* admissions recorded before this one */
  int isolated;                 /* ... of them, isolated runs */
  bool suspect;                 /* runs alone: see consumer.h */
  bool isolated_run;            /* admitted as an isolated run */
  enum estate state;
  bool holding;                 /* queued in the gate */
  bool waiting;                 /* a conversation waiting for its user */
  struct seqmap_holder holder;
  struct qnode all;             /* part->entries */
  struct qnode ready;           /* part->ready (c->suspects for a suspect),
                                   while ES_READY */
};

/* One write of the commit record. */
struct op {
  char code;                    /* R, A, U, D */
  char sid[32];
  int64_t id;                   /* A: the update to deliver once written */
};

struct opvec {
  struct op *v;
  size_t n, cap;
};

struct part {
  struct consumer *c;
  int index;
  enum pstate state;
  long long epoch;
  unsigned gen;                 /* bumped at each takeover */
  char lease_key[64], commit_key[64], stream_key[64];
  char cursor[32];              /* the last stream id read */
  char hwm[32];                 /* to write with the next commit ("" none) */
  struct qlist entries;         /* every live entry */
  struct qlist ready;           /* ES_READY, in grant order */
  size_t in_sink, waiting;
  struct opvec pending, sent;
  bool commit_in_flight;
  bool failed;                  /* the last write failed: retry later */
  bool takeover_failed;
  size_t done_since_trim;
  uint64_t last_trim_ms;
  bool trim_in_flight;
  char lag_label[16];
};

struct consumer {
  struct event_base *base;
  struct redisconn *cmd, *reader;
  struct consumer_config cfg;
  struct consumer_events ev;
  void *ud;
  char stats_key[64], dead_key[64];
  struct part *parts;
  struct hashmap byid;
  struct seqmap gate;
  int want;                     /* what the runner asked for, left */
  size_t admitting;             /* ES_ADMITTING entries */
  size_t buffered;              /* ES_GATED + ES_READY */
  int next_part;                /* round robin of admissions */
  struct qlist suspects;        /* ES_READY suspects, oldest first */
  struct centry *isolated;      /* the suspect running alone, or NULL */
  size_t active;                /* in the runner and not waiting for a user */
  bool reading;                 /* an XREAD is in flight */
  bool read_failed;
  bool stopping;
  struct event *kick_event;     /* flush, admit, read: from the loop */
  struct event *retry_timer;
  struct read_req *read;        /* the XREAD in flight */
};

/* What an XREAD asked for, to recognize stale answers. */
struct read_req {
  struct consumer *c;
  unsigned *gens;               /* per partition: its gen when asked */
};

static void kick(struct consumer *c) { event_active(c->kick_event, 0, 0); }

/* --- commit ops ----------------------------------------------------------- */

static void op_push(struct opvec *v, char code, const char *sid, int64_t id) {
  if (v->n == v->cap) {
    v->cap = v->cap ? 2 * v->cap : 16;
    v->v = xrealloc(v->v, v->cap * sizeof *v->v);
  }
  struct op *o = &v->v[v->n++];
  o->code = code;
  snprintf(o->sid, sizeof o->sid, "%s", sid);
  o->id = id;
}

/* Puts the ops of from before those of to (a failed write, sent again). */
static void op_prepend(struct opvec *to, struct opvec *from) {
  if (from->n == 0) return;
  size_t n = to->n + from->n;
  if (n > to->cap) {
    to->cap = n;
    to->v = xrealloc(to->v, to->cap * sizeof *to->v);
  }
  memmove(to->v + from->n, to->v, to->n * sizeof *to->v);
  memcpy(to->v, from->v, from->n * sizeof *from->v);
  to->n = n;
  from->n = 0;
}

/* Forgets the pending admission of id (its entry was dropped before the
 * write went out). */
static void op_drop_admission(struct opvec *v, int64_t id) {
  for (size_t i = 0; i < v->n; i++) {
    if ((v->v[i].code == 'A' || v->v[i].code == 'I') && v->v[i].id == id) {
      /* Still recorded as read. */
      v->v[i].code = 'R';
      v->v[i].id = 0;
      return;
    }
  }
}

/* --- entries -------------------------------------------------------------- */

static struct centry *find_entry(const struct consumer *c, int64_t id) {
  struct hashmap_key k = hashmap_key(&c->byid, 0, &id, sizeof id);
  struct hashmap_node *n = hashmap_find(&c->byid, &k);
  return n ? hashmap_entry(n, struct centry, node) : NULL;
}

static void on_grant(struct seqmap_holder *h, void *ud) {
  struct centry *e = h->ud;
  (void)ud;
  if (e->state != ES_GATED) return;
  e->state = ES_READY;
  qlist_push_back(e->suspect ? &e->part->c->suspects : &e->part->ready,
                  &e->ready);
  kick(e->part->c);
}

/* A new entry of p, queued in the gate behind its key. */
static void add_entry(struct part *p, int64_t id, const char *sid,
                      const char *key, size_t key_len, const char *json,
                      size_t len, int attempts, int isolated) {
  struct consumer *c = p->c;
  if (find_entry(c, id)) {
    /* The dedup set makes this impossible within its window; a copy
     * older than that is finished here rather than run twice at once. */
    log_warn("cluster: update %" PRId64 " is in partition %d twice (stream "
             "entry %s); the copy is dropped", id, p->index, sid);
    op_push(&p->pending, 'D', sid, 0);
    return;
  }
  struct centry *e = xcalloc(1, sizeof *e);
  e->id = id;
  e->part = p;
  e->gen = p->gen;
  snprintf(e->sid, sizeof e->sid, "%s", sid);
  e->key = xstrndup(key, key_len);
  e->key_len = key_len;
  e->json = xstrndup(json, len);
  e->len = len;
  e->attempts = attempts;
  e->isolated = isolated;
  /* Its owners lost it twice while it ran: it may be what ends them. */
  e->suspect = attempts >= SUSPECT_AFTER;
  e->state = ES_GATED;
  seqmap_holder_init(&e->holder, e);
  struct hashmap_key k = hashmap_key(&c->byid, 0, &e->id, sizeof e->id);
  hashmap_insert(&c->byid, &e->node, &k, (const char *)&e->id);
  qlist_push_back(&p->entries, &e->all);
  c->buffered++;
  struct seqmap_key sk = {SEQMAP_STRING, e->key, e->key_len, 0};
  size_t waiting = 0;
  seqmap_acquire(&c->gate, &e->holder, &sk, 1, &waiting);
  e->holding = true;
  if (waiting == 0) on_grant(&e->holder, c);
}

static void leave_gate(struct consumer *c, struct centry *e) {
  if (!e->holding) return;
  e->holding = false;
  seqmap_release(&c->gate, &e->holder);
}

/* Forgets e (whatever it was doing); the gate lets the next of its key
 * go. */
static void remove_entry(struct consumer *c, struct centry *e) {
  struct part *p = e->part;
  switch (e->state) {
    case ES_GATED: c->buffered--; break;
    case ES_READY:
      c->buffered--;
      qlist_remove(e->suspect ? &c->suspects : &p->ready, &e->ready);
      break;
    case ES_ADMITTING: c->admitting--; break;
    case ES_IN_SINK:
      p->in_sink--;
      if (!e->waiting) c->active--;
      break;
  }
  if (c->isolated == e) c->isolated = NULL;
  if (e->waiting) p->waiting--;
  qlist_remove(&p->entries, &e->all);
  hashmap_remove(&c->byid, &e->node);
  leave_gate(c, e);
  free(e->key);
  free(e->json);
  free(e);
  if (p->state == PS_LOST || p->state == PS_DRAINING ||
      p->state == PS_STOPPING)
    kick(c);
}

/* Drops the entries of p the runner does not have (read, gated, being
 * admitted): the record keeps them for whoever reads it next. */
static void drop_unsent(struct consumer *c, struct part *p) {
  struct qnode *q = p->entries.head.next, *next;
  for (; q != &p->entries.head; q = next) {
    next = q->next;   /* remove_entry unlinks only q */
    struct centry *e = qlist_entry(q, struct centry, all);
    if (e->state == ES_IN_SINK) continue;
    if (e->state == ES_ADMITTING) op_drop_admission(&p->pending, e->id);
    remove_entry(c, e);
  }
}

/* --- the record ----------------------------------------------------------- */

static void on_commit(struct redisconn *conn, const redisReply *rep,
                      const char *error, void *ud);

/* The op as tgc_commit reads it. */
static const char *op_name(char code) {
  switch (code) {
    case 'A': return "A";
    case 'I': return "I";
    case 'U': return "U";
    case 'V': return "V";
    case 'D': return "D";
    default: return "R";
  }
}

static bool writes_allowed(const struct part *p) {
  return p->state == PS_OWNED || p->state == PS_DRAINING ||
         p->state == PS_STOPPING || p->state == PS_TAKING_OVER;
}

/* Sends what is pending for p: one FCALL, one at a time per partition. */
static void flush(struct consumer *c, struct part *p) {
  if (p->commit_in_flight || p->failed || !writes_allowed(p) ||
      p->state == PS_TAKING_OVER)
    return;
  if (p->pending.n == 0 && !p->hwm[0]) return;
  size_t argc = 3 + 3 + 2 + 2 * p->pending.n;
  const char **argv = xcalloc(argc, sizeof *argv);
  char epoch[24];
  snprintf(epoch, sizeof epoch, "%lld", p->epoch);
  size_t i = 0;
  argv[i++] = "FCALL";
  argv[i++] = "tgc_commit";
  argv[i++] = "3";
  argv[i++] = p->lease_key;
  argv[i++] = p->commit_key;
  argv[i++] = c->stats_key;
  argv[i++] = epoch;
  argv[i++] = p->hwm;
  for (size_t j = 0; j < p->pending.n; j++) {
    struct op *o = &p->pending.v[j];
    argv[i++] = op_name(o->code);
    argv[i++] = o->sid;
  }
  redisconn_command(c->cmd, (int)i, argv, NULL, on_commit, p);
  free(argv);
  p->hwm[0] = '\0';
  /* What went out, in case it must go out again. */
  struct opvec t = p->sent;
  p->sent = p->pending;
  p->pending = t;
  p->pending.n = 0;
  p->commit_in_flight = true;
}

static struct kv_fence *fence_of(struct consumer *c, struct part *p) {
  struct kv_fence *f = xcalloc(1, sizeof *f);
  snprintf(f->lease, sizeof f->lease, "%s", p->lease_key);
  snprintf(f->refused, sizeof f->refused, "%s", c->stats_key);
  f->epoch = p->epoch;
  return f;
}

static bool is_stale(const redisReply *rep) {
  return rep && rep->type == REDIS_REPLY_ERROR &&
         strncmp(rep->str, CLUSTERLIB_STALE, strlen(CLUSTERLIB_STALE)) == 0;
}

static void refused(struct consumer *c, struct part *p, const char *what) {
  metric_inc(METRIC_CLUSTER_FENCED_REFUSED, what, NULL);
  c->ev.on_refused(c->ud, p->index, what);
}

static void on_commit(struct redisconn *conn, const redisReply *rep,
                      const char *error, void *ud) {
  (void)conn;
  if (!rep && !error) return;   /* teardown */
  struct part *p = ud;
  struct consumer *c = p->c;
  p->commit_in_flight = false;
  if (is_stale(rep)) {
    p->sent.n = 0;
    refused(c, p, "commit");
    return;
  }
  if (error || rep->type == REDIS_REPLY_ERROR) {
    if (writes_allowed(p)) {
      /* Sent again, in order, once Redis answers again (the ops are
       * idempotent but for admissions, which may then count twice: that
       * only brings a dead letter closer). */
      op_prepend(&p->pending, &p->sent);
      p->failed = true;
      if (!evtimer_pending(c->retry_timer, NULL)) {
        struct timeval tv = {0, RETRY_MS * 1000};
        evtimer_add(c->retry_timer, &tv);
      }
      log_debug("cluster: partition %d: record write failed (%s); retrying",
                p->index, error ? error : rep->str);
    } else {
      p->sent.n = 0;
    }
    kick(c);
    return;
  }
  /* Written: the admitted updates go to the runner. */
  struct qlist batch;
  qlist_init(&batch);
  size_t delivered = 0;
  for (size_t i = 0; i < p->sent.n; i++) {
    struct op *o = &p->sent.v[i];
    if (o->code == 'D') p->done_since_trim++;
    if (o->code != 'A' && o->code != 'I') continue;
    struct centry *e = find_entry(c, o->id);
    if (!e || e->part != p || e->state != ES_ADMITTING) continue;
    c->admitting--;
    if (p->state != PS_OWNED && p->state != PS_DRAINING) {
      /* A stop began meanwhile: undo the admission, the next owner runs
       * it. */
      op_push(&p->pending, e->isolated_run ? 'V' : 'U', e->sid, 0);
      e->state = ES_GATED;
      c->buffered++;
      remove_entry(c, e);
      continue;
    }
    e->state = ES_IN_SINK;
    p->in_sink++;
    c->active++;
    struct update_item *u = xcalloc(1, sizeof *u);
    u->id = e->id;
    u->json = e->json;
    u->len = e->len;
    e->json = NULL;
    u->redelivered = e->attempts > 0;
    u->partition = p->index;
    u->fence = fence_of(c, p);
    if (u->redelivered) metric_inc(METRIC_CLUSTER_REDELIVERED, NULL, NULL);
    qlist_push_back(&batch, &u->node);
    delivered++;
  }
  p->sent.n = 0;
  c->want = c->want > (int)delivered ? c->want - (int)delivered : 0;
  kick(c);
  if (delivered) c->ev.deliver(c->ud, &batch);
}

static void on_trim(struct redisconn *conn, const redisReply *rep,
                    const char *error, void *ud) {
  (void)conn;
  if (!rep && !error) return;
  struct part *p = ud;
  p->trim_in_flight = false;
  if (is_stale(rep)) refused(p->c, p, "trim");
}

static void maybe_trim(struct consumer *c, struct part *p) {
  if (p->state != PS_OWNED || p->trim_in_flight || p->done_since_trim == 0)
    return;
  uint64_t now = clock_now_ms();
  if (p->done_since_trim < TRIM_EVERY &&
      now - p->last_trim_ms < TRIM_INTERVAL_MS)
    return;
  p->done_since_trim = 0;
  p->last_trim_ms = now;
  char epoch[24];
  snprintf(epoch, sizeof epoch, "%lld", p->epoch);
  const char *argv[] = {"FCALL",         "tgc_trim",   "4",
                        p->lease_key,    p->commit_key, p->stream_key,
                        c->stats_key,    epoch};
  p->trim_in_flight = true;
  redisconn_command(c->cmd, 8, argv, NULL, on_trim, p);
}

/* --- admissions ----------------------------------------------------------- */

/* Admits what the runner wants from the partitions' ready queues, round
 * robin, written ahead with each partition's next commit. */
static void admit(struct consumer *c) {
  if (c->stopping || c->isolated) return;
  if (!qlist_empty(&c->suspects)) {
    /* A suspect runs alone: nothing else is admitted until every update
     * of this process has ended (or waits for its user), then it goes,
     * its isolated run counted in the record before it starts. */
    if (c->active > 0 || c->admitting > 0 || c->want <= 0) return;
    struct centry *e = qlist_entry(qlist_pop_front(&c->suspects),
                                   struct centry, ready);
    e->state = ES_ADMITTING;
    e->isolated_run = true;
    c->buffered--;
    c->admitting++;
    c->isolated = e;
    op_push(&e->part->pending, 'I', e->sid, e->id);
    log_warn("cluster: update %" PRId64 " of partition %d runs alone in this "
             "process: its last %d owners lost it while it ran (it may be "
             "what ends them)", e->id, e->part->index, e->attempts);
    return;
  }
  int n = c->cfg.partitions;
  for (int k = 0; k < n && c->want > (int)c->admitting; k++) {
    struct part *p = &c->parts[(c->next_part + k) % n];
    if (p->state != PS_OWNED) continue;
    struct qnode *q;
    int taken = 0;
    while (c->want > (int)c->admitting && taken < 16 &&
           (q = qlist_pop_front(&p->ready))) {
      struct centry *e = qlist_entry(q, struct centry, ready);
      e->state = ES_ADMITTING;
      c->buffered--;
      c->admitting++;
      op_push(&p->pending, 'A', e->sid, e->id);
      taken++;
    }
  }
  c->next_part = (c->next_part + 1) % n;
}

/* --- reading -------------------------------------------------------------- */

static void on_read(struct redisconn *conn, const redisReply *rep,
                    const char *error, void *ud);

static void read_more(struct consumer *c) {
  if (c->reading || c->read_failed || c->stopping) return;
  if (c->buffered >= READ_AHEAD) return;
  int n = c->cfg.partitions, owned = 0;
  for (int i = 0; i < n; i++)
    if (c->parts[i].state == PS_OWNED) owned++;
  if (owned == 0) return;
  size_t room = READ_AHEAD - c->buffered;
  size_t count = room / (size_t)owned;
  if (count > READ_COUNT) count = READ_COUNT;
  if (count < 1) count = 1;
  char count_s[16], block_s[24];
  snprintf(count_s, sizeof count_s, "%zu", count);
  snprintf(block_s, sizeof block_s, "%ld", c->cfg.block_ms);
  const char **argv = xcalloc((size_t)(6 + 2 * owned), sizeof *argv);
  int argc = 0;
  argv[argc++] = "XREAD";
  argv[argc++] = "COUNT";
  argv[argc++] = count_s;
  argv[argc++] = "BLOCK";
  argv[argc++] = block_s;
  argv[argc++] = "STREAMS";
  struct read_req *r = xcalloc(1, sizeof *r);
  r->c = c;
  r->gens = xcalloc((size_t)n, sizeof *r->gens);
  for (int i = 0; i < n; i++) {
    if (c->parts[i].state != PS_OWNED) continue;
    argv[argc++] = c->parts[i].stream_key;
    r->gens[i] = c->parts[i].gen;
  }
  for (int i = 0; i < n; i++)
    if (c->parts[i].state == PS_OWNED) argv[argc++] = c->parts[i].cursor;
  c->reading = true;
  c->read = r;
  redisconn_blocking_command(c->reader, c->cfg.block_ms, argc, argv, NULL,
                             on_read, r);
  free(argv);
}

/* The partition a stream key names ("tgc:<bot>:s:<p>"), or -1. */
static int partition_of_stream(const struct consumer *c, const char *key) {
  const char *colon = strrchr(key, ':');
  if (!colon || colon == key || colon[-1] != 's') return -1;
  char *end;
  long p = strtol(colon + 1, &end, 10);
  return *end || p < 0 || p >= c->cfg.partitions ? -1 : (int)p;
}

/* An entry's fields: u (update id), k (cluster key), j (the update). */
static bool entry_fields(const redisReply *fields, int64_t *id,
                         const redisReply **key, const redisReply **json) {
  *key = *json = NULL;
  bool have_id = false;
  if (fields->type != REDIS_REPLY_ARRAY) return false;
  for (size_t i = 0; i + 1 < fields->elements; i += 2) {
    const redisReply *f = fields->element[i], *v = fields->element[i + 1];
    if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
      continue;
    if (strcmp(f->str, "u") == 0) {
      char *end;
      *id = strtoll(v->str, &end, 10);
      have_id = *end == '\0' && end != v->str;
    } else if (strcmp(f->str, "k") == 0) {
      *key = v;
    } else if (strcmp(f->str, "j") == 0) {
      *json = v;
    }
  }
  return have_id && *key && *json;
}

static void on_read(struct redisconn *conn, const redisReply *rep,
                    const char *error, void *ud) {
  (void)conn;
  struct read_req *r = ud;
  struct consumer *c = r->c;
  if (!rep && !error) {
    free(r->gens);
    free(r);
    return;
  }
  c->reading = false;
  c->read = NULL;
  if (error || rep->type == REDIS_REPLY_ERROR) {
    c->read_failed = true;
    if (!evtimer_pending(c->retry_timer, NULL)) {
      struct timeval tv = {0, RETRY_MS * 1000};
      evtimer_add(c->retry_timer, &tv);
    }
    free(r->gens);
    free(r);
    return;
  }
  if (rep->type == REDIS_REPLY_ARRAY) {
    for (size_t s = 0; s < rep->elements; s++) {
      const redisReply *st = rep->element[s];
      if (st->type != REDIS_REPLY_ARRAY || st->elements != 2 ||
          st->element[0]->type != REDIS_REPLY_STRING)
        continue;
      int pi = partition_of_stream(c, st->element[0]->str);
      if (pi < 0) continue;
      struct part *p = &c->parts[pi];
      /* Lost, moved or taken over again since the read was sent: its
       * cursor then was another ownership's. */
      if (p->state != PS_OWNED || p->gen != r->gens[pi]) continue;
      const redisReply *entries = st->element[1];
      for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *en = entries->element[i];
        if (en->type != REDIS_REPLY_ARRAY || en->elements != 2 ||
            en->element[0]->type != REDIS_REPLY_STRING)
          continue;
        const char *sid = en->element[0]->str;
        snprintf(p->cursor, sizeof p->cursor, "%s", sid);
        snprintf(p->hwm, sizeof p->hwm, "%s", sid);
        int64_t id = 0;
        const redisReply *key, *json;
        if (!entry_fields(en->element[1], &id, &key, &json)) {
          log_warn("cluster: partition %d: stream entry %s is not an update "
                   "(fields u, k, j); skipped", pi, sid);
          op_push(&p->pending, 'D', sid, 0);
          continue;
        }
        op_push(&p->pending, 'R', sid, 0);
        add_entry(p, id, sid, key->str, key->len, json->str, json->len, 0,
                  0);
      }
    }
  }
  free(r->gens);
  free(r);
  kick(c);
}

/* --- takeover ------------------------------------------------------------- */

static void send_takeover(struct consumer *c, struct part *p);

struct takeover_req {
  struct part *p;
  unsigned gen;
};

static void on_takeover(struct redisconn *conn, const redisReply *rep,
                        const char *error, void *ud) {
  (void)conn;
  struct takeover_req *t = ud;
  struct part *p = t->p;
  unsigned gen = t->gen;
  free(t);
  if (!rep && !error) return;
  struct consumer *c = p->c;
  if (p->state != PS_TAKING_OVER || p->gen != gen) return;
  if (is_stale(rep)) {
    refused(c, p, "takeover");
    return;
  }
  if (error || rep->type != REDIS_REPLY_ARRAY || rep->elements != 3) {
    log_debug("cluster: partition %d: takeover failed (%s); retrying",
              p->index, error ? error : rep->type == REDIS_REPLY_ERROR
                                            ? rep->str
                                            : "unexpected answer");
    p->takeover_failed = true;
    if (!evtimer_pending(c->retry_timer, NULL)) {
      struct timeval tv = {0, RETRY_MS * 1000};
      evtimer_add(c->retry_timer, &tv);
    }
    return;
  }
  const redisReply *hwm = rep->element[0], *dead = rep->element[1],
                   *entries = rep->element[2];
  snprintf(p->cursor, sizeof p->cursor, "%s",
           hwm->type == REDIS_REPLY_STRING && hwm->len ? hwm->str : "0-0");
  if (dead->type == REDIS_REPLY_ARRAY) {
    for (size_t i = 0; i < dead->elements; i++) {
      log_error("cluster: update %s of partition %d is a dead letter: it was "
                "admitted %d times and never finished (its owners crashed or "
                "lost the partition while it ran); tghost --cluster URL "
                "--dead-letters lists it",
                dead->element[i]->type == REDIS_REPLY_STRING
                    ? dead->element[i]->str
                    : "?",
                p->index, c->cfg.max_attempts);
      metric_inc(METRIC_CLUSTER_DEAD_LETTERS, NULL, NULL);
    }
  }
  p->state = PS_OWNED;
  size_t replayed = 0;
  if (entries->type == REDIS_REPLY_ARRAY) {
    for (size_t i = 0; i < entries->elements; i++) {
      const redisReply *en = entries->element[i];
      if (en->type != REDIS_REPLY_ARRAY || en->elements != 6) continue;
      const redisReply *sid = en->element[0], *att = en->element[1],
                       *iso = en->element[2], *u = en->element[3],
                       *k = en->element[4], *j = en->element[5];
      char *end;
      int64_t id = strtoll(u->str ? u->str : "", &end, 10);
      if (sid->type != REDIS_REPLY_STRING || !u->str || *end ||
          k->type != REDIS_REPLY_STRING || j->type != REDIS_REPLY_STRING) {
        op_push(&p->pending, 'D', sid->str ? sid->str : "0-0", 0);
        continue;
      }
      add_entry(p, id, sid->str, k->str, k->len, j->str, j->len,
                att->type == REDIS_REPLY_INTEGER ? (int)att->integer : 0,
                iso->type == REDIS_REPLY_INTEGER ? (int)iso->integer : 0);
      replayed++;
    }
  }
  metric_inc(METRIC_CLUSTER_PARTITION_MOVES, "in", NULL);
  c->ev.on_taken(c->ud, p->index, replayed);
  kick(c);
}

static void send_takeover(struct consumer *c, struct part *p) {
  char epoch[24], index[16], maxa[16];
  snprintf(epoch, sizeof epoch, "%lld", p->epoch);
  snprintf(index, sizeof index, "%d", p->index);
  snprintf(maxa, sizeof maxa, "%d", c->cfg.max_attempts);
  const char *argv[] = {"FCALL",      "tgc_takeover", "5",         p->lease_key,
                        p->commit_key, p->stream_key, c->dead_key, c->stats_key,
                        epoch,        index,          maxa};
  struct takeover_req *t = xmalloc(sizeof *t);
  t->p = p;
  t->gen = p->gen;
  p->takeover_failed = false;
  redisconn_command(c->cmd, 11, argv, NULL, on_takeover, t);
}

/* --- the loop's turn ------------------------------------------------------ */

static void settle_partition(struct consumer *c, struct part *p) {
  bool idle_writes = !p->commit_in_flight && p->pending.n == 0 && !p->hwm[0];
  if (p->state == PS_DRAINING && p->in_sink == 0 && qlist_empty(&p->entries) &&
      idle_writes) {
    p->state = PS_DRAINED;
    metric_inc(METRIC_CLUSTER_PARTITION_MOVES, "out", NULL);
    c->ev.on_drained(c->ud, p->index);
  } else if (p->state == PS_LOST && qlist_empty(&p->entries)) {
    p->state = PS_FREE;
    c->ev.on_free(c->ud, p->index);
  }
}

static void on_kick(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  struct consumer *c = arg;
  admit(c);
  for (int i = 0; i < c->cfg.partitions; i++) {
    struct part *p = &c->parts[i];
    if (p->state == PS_FREE) continue;
    flush(c, p);
    maybe_trim(c, p);
  }
  /* Callbacks last: they may own or forget partitions. */
  for (int i = 0; i < c->cfg.partitions; i++) settle_partition(c, &c->parts[i]);
  read_more(c);
  /* While admissions are being written, their delivery makes the runner
   * ask again anyway. */
  if (!c->stopping && c->admitting == 0 && c->want == 0) {
    if (!qlist_empty(&c->suspects) && !c->isolated) c->ev.ready(c->ud);
    else for (int i = 0; i < c->cfg.partitions; i++) {
      if (c->parts[i].state == PS_OWNED && !qlist_empty(&c->parts[i].ready)) {
        c->ev.ready(c->ud);
        break;
      }
    }
  }
}

static void on_retry(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  consumer_retry(arg);
}

void consumer_retry(struct consumer *c) {
  c->read_failed = false;
  for (int i = 0; i < c->cfg.partitions; i++) {
    struct part *p = &c->parts[i];
    p->failed = false;
    if (p->state == PS_TAKING_OVER && p->takeover_failed)
      send_takeover(c, p);
  }
  kick(c);
}

/* --- the public side ------------------------------------------------------ */

struct consumer *consumer_new(struct event_base *base, struct redisconn *cmd,
                              struct redisconn *reader,
                              const struct consumer_config *cfg,
                              const struct consumer_events *ev, void *ud) {
  struct consumer *c = xcalloc(1, sizeof *c);
  c->base = base;
  c->cmd = cmd;
  c->reader = reader;
  c->cfg = *cfg;
  c->ev = *ev;
  c->ud = ud;
  struct buf k = BUF_INIT;
  clusterlib_key(&k, cfg->bot_id, CK_STATS, 0);
  snprintf(c->stats_key, sizeof c->stats_key, "%s", k.data);
  buf_reset(&k);
  clusterlib_key(&k, cfg->bot_id, CK_DEAD, 0);
  snprintf(c->dead_key, sizeof c->dead_key, "%s", k.data);
  c->parts = xcalloc((size_t)cfg->partitions, sizeof *c->parts);
  for (int i = 0; i < cfg->partitions; i++) {
    struct part *p = &c->parts[i];
    p->c = c;
    p->index = i;
    qlist_init(&p->entries);
    qlist_init(&p->ready);
    buf_reset(&k);
    clusterlib_key(&k, cfg->bot_id, CK_LEASE, i);
    snprintf(p->lease_key, sizeof p->lease_key, "%s", k.data);
    buf_reset(&k);
    clusterlib_key(&k, cfg->bot_id, CK_COMMIT, i);
    snprintf(p->commit_key, sizeof p->commit_key, "%s", k.data);
    buf_reset(&k);
    clusterlib_key(&k, cfg->bot_id, CK_STREAM, i);
    snprintf(p->stream_key, sizeof p->stream_key, "%s", k.data);
    snprintf(p->lag_label, sizeof p->lag_label, "%d", i);
  }
  buf_free(&k);
  qlist_init(&c->suspects);
  hashmap_init(&c->byid, keyhash_random_seed());
  seqmap_init(&c->gate, keyhash_random_seed(), on_grant, c);
  c->kick_event = event_new(base, -1, 0, on_kick, c);
  c->retry_timer = evtimer_new(base, on_retry, c);
  return c;
}

void consumer_free(struct consumer *c) {
  if (!c) return;
  for (int i = 0; i < c->cfg.partitions; i++) {
    struct part *p = &c->parts[i];
    struct qnode *n;
    while ((n = qlist_front(&p->entries)))
      remove_entry(c, qlist_entry(n, struct centry, all));
    free(p->pending.v);
    free(p->sent.v);
  }
  seqmap_free(&c->gate);
  hashmap_free(&c->byid);
  event_free(c->kick_event);
  event_free(c->retry_timer);
  free(c->parts);
  free(c);
}

void consumer_own(struct consumer *c, int pi, long long epoch) {
  struct part *p = &c->parts[pi];
  if (p->state != PS_FREE || c->stopping) return;
  p->state = PS_TAKING_OVER;
  p->epoch = epoch;
  p->gen++;
  p->pending.n = p->sent.n = 0;
  p->hwm[0] = '\0';
  p->failed = false;
  p->done_since_trim = 0;
  p->last_trim_ms = clock_now_ms();
  send_takeover(c, p);
}

/* An update of the partition's ownership being revoked. */
struct revoke_match {
  struct consumer *c;
  int partition;
  unsigned gen;
};

static bool match_revoked(int64_t id, void *ud) {
  struct revoke_match *m = ud;
  struct centry *e = find_entry(m->c, id);
  return e && e->part->index == m->partition && e->gen == m->gen;
}

void consumer_lose(struct consumer *c, int pi, const char *reason) {
  struct part *p = &c->parts[pi];
  if (p->state == PS_FREE || p->state == PS_LOST) return;
  bool had = p->state != PS_TAKING_OVER && p->state != PS_DRAINED;
  p->state = PS_LOST;
  p->pending.n = 0;
  p->hwm[0] = '\0';
  metric_set(METRIC_CLUSTER_PARTITION_LAG, 0, p->lag_label, NULL);
  drop_unsent(c, p);
  if (had && p->in_sink) {
    char why[200];
    snprintf(why, sizeof why, "cancelled: this instance lost cluster "
             "partition %d (%s)", pi, reason);
    struct revoke_match m = {c, pi, p->gen};
    c->ev.revoke(c->ud, match_revoked, &m, why);
  }
  kick(c);
}

static bool match_waiting(int64_t id, void *ud) {
  struct revoke_match *m = ud;
  struct centry *e = find_entry(m->c, id);
  return e && e->part->index == m->partition && e->gen == m->gen &&
         e->waiting;
}

void consumer_drain(struct consumer *c, int pi) {
  struct part *p = &c->parts[pi];
  if (p->state != PS_OWNED) return;
  p->state = PS_DRAINING;
  drop_unsent(c, p);
  /* Conversations waiting for their user would hold the move forever:
   * they end here and resume, from their update, at the next owner. */
  if (p->waiting) {
    log_info("cluster: partition %d moves to another member: %zu "
             "conversation(s) waiting there are cut short and resume from "
             "their update at its new owner", pi, p->waiting);
    struct revoke_match m = {c, pi, p->gen};
    c->ev.revoke(c->ud, match_waiting, &m,
                 "cancelled: its cluster partition moved to another member");
  }
  kick(c);
}

void consumer_forget(struct consumer *c, int pi) {
  struct part *p = &c->parts[pi];
  if (p->state != PS_DRAINED) return;
  p->state = qlist_empty(&p->entries) ? PS_FREE : PS_LOST;
  metric_set(METRIC_CLUSTER_PARTITION_LAG, 0, p->lag_label, NULL);
  kick(c);
}

void consumer_fetch(struct consumer *c, int limit) {
  if (c->stopping) return;
  c->want = limit;
  if (c->admitting < (size_t)limit) kick(c);
}

void consumer_outcome(struct consumer *c, int64_t id,
                      enum update_outcome outcome) {
  struct centry *e = find_entry(c, id);
  if (!e || e->state != ES_IN_SINK) return;
  struct part *p = e->part;
  bool mine = p->gen == e->gen && writes_allowed(p);
  switch (outcome) {
    case UPDATE_STARTED:
    case UPDATE_WAITING:
      /* Running, or waiting behind other updates (sequentialize): its key
       * stays held. */
      return;
    case UPDATE_IDLE:
      /* A conversation steps aside: the updates of its key may run (one
       * of them is the answer it waits for). */
      if (!e->waiting) {
        e->waiting = true;
        p->waiting++;
        c->active--;
      }
      leave_gate(c, e);
      /* Waiting is not running: an isolated run is over. */
      if (c->isolated == e) {
        c->isolated = NULL;
        kick(c);
      }
      return;
    case UPDATE_DONE:
    case UPDATE_FAILED:
    case UPDATE_TIMED_OUT:
      /* Handled (a failure went to bot.catch): out of the record. */
      if (mine) op_push(&p->pending, 'D', e->sid, 0);
      break;
    case UPDATE_RELEASED:
      /* Handed back unstarted at a stop: the admission did not happen. */
      if (mine) op_push(&p->pending, e->isolated_run ? 'V' : 'U', e->sid, 0);
      break;
    case UPDATE_CUT_SHORT:
      /* Cancelled after it started (the drain timeout, a lost lease): it
       * stays in the record and runs again at the next owner. */
      break;
  }
  remove_entry(c, e);
  kick(c);
}

void consumer_stop(struct consumer *c) {
  if (c->stopping) return;
  c->stopping = true;
  c->want = 0;
  for (int i = 0; i < c->cfg.partitions; i++) {
    struct part *p = &c->parts[i];
    if (p->state == PS_OWNED || p->state == PS_DRAINING ||
        p->state == PS_TAKING_OVER) {
      if (p->state != PS_TAKING_OVER) p->state = PS_STOPPING;
      drop_unsent(c, p);
    }
  }
  kick(c);
}

bool consumer_settled(const struct consumer *c) {
  for (int i = 0; i < c->cfg.partitions; i++) {
    const struct part *p = &c->parts[i];
    if (p->in_sink) return false;
    if (writes_allowed(p) && p->state != PS_TAKING_OVER &&
        (p->commit_in_flight || p->pending.n || p->hwm[0]))
      return false;
  }
  return true;
}

bool consumer_owns(const struct consumer *c, int p) {
  enum pstate s = c->parts[p].state;
  return s == PS_TAKING_OVER || s == PS_OWNED || s == PS_DRAINING ||
         s == PS_DRAINED || s == PS_STOPPING;
}

bool consumer_is_free(const struct consumer *c, int p) {
  return c->parts[p].state == PS_FREE;
}

bool consumer_draining(const struct consumer *c, int p) {
  return c->parts[p].state == PS_DRAINING || c->parts[p].state == PS_DRAINED;
}

size_t consumer_waiting(const struct consumer *c, int p) {
  return c->parts[p].waiting;
}

size_t consumer_live(const struct consumer *c, int p) {
  return qlist_size(&c->parts[p].entries);
}

long long consumer_epoch(const struct consumer *c, int p) {
  return c->parts[p].epoch;
}

void consumer_set_lag(struct consumer *c, int pi, long long entries) {
  struct part *p = &c->parts[pi];
  if (!consumer_owns(c, pi)) return;
  metric_set(METRIC_CLUSTER_PARTITION_LAG, (double)entries, p->lag_label,
             NULL);
}
