#include "store/redisstore.h"

#include <stdlib.h>
#include <string.h>

#include "store/redisconn.h"

/* Compare-and-set. KEYS[1] the key; ARGV: expected given (1/0), expected,
 * new given (1/0), new, ttl in ms (0: none). Answers {1} once swapped,
 * {0, current} otherwise (current nil when absent). */
static const char CAS_SCRIPT[] =
    "local cur = redis.call('GET', KEYS[1])\n"
    "if ARGV[1] == '1' then\n"
    "  if cur ~= ARGV[2] then return {0, cur} end\n"
    "elseif cur then\n"
    "  return {0, cur}\n"
    "end\n"
    "if ARGV[3] == '0' then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "elseif ARGV[5] ~= '0' then\n"
    "  redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[5])\n"
    "else\n"
    "  redis.call('SET', KEYS[1], ARGV[4])\n"
    "end\n"
    "return {1}\n";

/* One page of keys. ARGV: the MATCH pattern, the SCAN cursor, COUNT, how
 * many keys are wanted, at most how many SCAN calls. Answers {cursor,
 * keys}, keys possibly more than wanted (SCAN returns whole buckets). */
static const char LIST_SCRIPT[] =
    "local cursor, keys, calls = ARGV[2], {}, 0\n"
    "local want, most = tonumber(ARGV[4]), tonumber(ARGV[5])\n"
    "repeat\n"
    "  local r = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', ARGV[3])\n"
    "  cursor = r[1]\n"
    "  for _, k in ipairs(r[2]) do keys[#keys + 1] = k end\n"
    "  calls = calls + 1\n"
    "until cursor == '0' or #keys >= want or calls >= most\n"
    "return {cursor, keys}\n";

/* SCAN calls per page at most, and the least COUNT asked of each. */
#define LIST_SCANS_PER_PAGE 32
#define LIST_MIN_COUNT 100

enum script { SCRIPT_CAS, SCRIPT_LIST, SCRIPTS };
static const char *const script_text[SCRIPTS] = {CAS_SCRIPT, LIST_SCRIPT};

struct redisstore {
  struct redisconn *conn;
  struct kv_deferred deferred;
  /* What Redis answered to SCRIPT LOAD ("" until then: EVAL instead). */
  char sha[SCRIPTS][41];
};

/* What a command needs to know when its answer comes. */
struct pending {
  struct redisstore *s;
  struct kvreq *req;
};

static void send_req(struct redisstore *s, struct pending *p, bool use_sha);

/* --- keys and cursors ----------------------------------------------------- */

/* The Redis key of a request's key: its namespace (the prefix) first. */
static void redis_key(const struct kvreq *r, struct buf *key) {
  buf_append_str(key, r->ns);
  buf_append(key, r->key, r->key_len);
}

/* SCAN's MATCH pattern for the keys starting with the namespace and the
 * prefix: glob characters escaped, then *. */
static void match_pattern(const struct kvreq *r, struct buf *out) {
  struct buf raw = BUF_INIT;
  redis_key(r, &raw);
  for (size_t i = 0; i < raw.len; i++) {
    if (strchr("*?[]\\", raw.data[i]) && raw.data[i]) buf_append(out, "\\", 1);
    buf_append(out, raw.data + i, 1);
  }
  buf_append(out, "*", 1);
  buf_free(&raw);
}

/* A list cursor: where SCAN goes on ("end" once it went round), then the
 * keys it returned beyond the last page's limit, each as :length:bytes. */
struct list_cursor {
  char scan[32];
  struct kv_key *keys;
  size_t n;
};

static int parse_cursor(const char *c, size_t len, struct list_cursor *out) {
  memset(out, 0, sizeof *out);
  size_t i = 0;
  while (i < len && c[i] != ':' && i < sizeof out->scan - 1) {
    out->scan[i] = c[i];
    i++;
  }
  if (i == 0 || (i < len && c[i] != ':')) return -1;
  size_t cap = 0;
  while (i < len) {
    if (c[i] != ':') return -1;
    i++;
    size_t n = 0, digits = 0;
    while (i < len && c[i] >= '0' && c[i] <= '9' && digits < 12) {
      n = n * 10 + (size_t)(c[i++] - '0');
      digits++;
    }
    if (digits == 0 || i >= len || c[i] != ':' || len - i - 1 < n) return -1;
    i++;
    if (out->n == cap) {
      cap = cap ? 2 * cap : 8;
      out->keys = xrealloc(out->keys, cap * sizeof *out->keys);
    }
    out->keys[out->n].data = (char *)c + i;
    out->keys[out->n++].len = n;
    i += n;
  }
  return 0;
}

/* The page's keys: the carried ones first, then what SCAN returned, at
 * most limit; the rest and SCAN's cursor make the next page's cursor. */
static void finish_page(struct kvreq *r, const char *scan,
                        const struct kv_key *found, size_t nfound) {
  struct buf next = BUF_INIT;
  buf_append_str(&next, scan);
  for (size_t i = 0; i < nfound; i++) {
    if (r->nkeys < r->limit)
      kvreq_add_key(r, found[i].data, found[i].len);
    else
      buf_printf(&next, ":%zu:", found[i].len),
          buf_append(&next, found[i].data, found[i].len);
  }
  if (strcmp(next.data, "end") == 0)
    kvreq_set_cursor(r, NULL, 0);
  else
    kvreq_set_cursor(r, next.data, next.len);
  buf_free(&next);
}

/* --- answers -------------------------------------------------------------- */

static void fail(struct redisstore *s, struct kvreq *r, const char *what) {
  kvreq_set_error(r, "redis storage %s: %s", redisconn_name(s->conn), what);
}

static bool is_string(const redisReply *rep) {
  return rep->type == REDIS_REPLY_STRING;
}

static void read_list(struct redisstore *s, struct kvreq *r,
                      const redisReply *rep) {
  if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
      !is_string(rep->element[0]) ||
      rep->element[1]->type != REDIS_REPLY_ARRAY) {
    fail(s, r, "unexpected answer to the list script");
    return;
  }
  const redisReply *keys = rep->element[1];
  size_t ns_len = strlen(r->ns);
  struct kv_key *found = xcalloc(keys->elements + 1, sizeof *found);
  size_t n = 0;
  for (size_t i = 0; i < keys->elements; i++) {
    const redisReply *k = keys->element[i];
    if (!is_string(k) || k->len < ns_len) continue;
    found[n].data = k->str + ns_len;
    found[n++].len = k->len - ns_len;
  }
  const char *scan = strcmp(rep->element[0]->str, "0") == 0
                         ? "end" : rep->element[0]->str;
  finish_page(r, scan, found, n);
  free(found);
}

static void on_reply(struct redisconn *c, const redisReply *rep,
                     const char *error, void *ud) {
  struct pending *p = ud;
  struct redisstore *s = p->s;
  struct kvreq *r = p->req;
  if (!rep && !error) {   /* teardown */
    kvreq_free(r);
    free(p);
    return;
  }
  if (error) {
    kvreq_set_error(r, "%s", error);
  } else if (rep->type == REDIS_REPLY_ERROR &&
             strncmp(rep->str, "NOSCRIPT", 8) == 0) {
    send_req(s, p, false);   /* Redis forgot the script (restarted, flushed) */
    return;
  } else if (rep->type == REDIS_REPLY_ERROR && r->fence.epoch &&
             strncmp(rep->str, "TGSTALE", 7) == 0) {
    kvreq_set_error(r, "redis storage %s: %s %s (%s)",
                    redisconn_name(s->conn), kvreq_op_name(r->op),
                    KV_FENCE_REFUSED, rep->str);
  } else if (rep->type == REDIS_REPLY_ERROR && r->fence.epoch &&
             strstr(rep->str, "Function not found")) {
    fail(s, r, "a write made for a cluster update must go to the cluster's "
               "own Redis (this one has no cluster functions): give the "
               "session storage the --cluster URL");
  } else if (rep->type == REDIS_REPLY_ERROR) {
    fail(s, r, rep->str);
  } else if (r->op == KV_GET) {
    kvreq_set_value(r, is_string(rep) ? rep->str : NULL, rep->len);
  } else if (r->op == KV_CAS) {
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER) {
      fail(s, r, "unexpected answer to the compare-and-set script");
    } else {
      r->swapped = rep->element[0]->integer == 1;
      const redisReply *cur = rep->elements > 1 ? rep->element[1] : NULL;
      kvreq_set_value(r, cur && is_string(cur) ? cur->str : NULL,
                      cur ? cur->len : 0);
    }
  } else if (r->op == KV_LIST) {
    read_list(s, r, rep);
  }
  free(p);
  kvreq_complete(r);
}

/* --- commands ------------------------------------------------------------- */

static void send_script(struct redisstore *s, struct pending *p,
                        enum script which, bool use_sha, int nkeys, int argc,
                        const char **argv, const size_t *lens) {
  const char *full[12];
  size_t full_lens[12];
  char nk[8];
  snprintf(nk, sizeof nk, "%d", nkeys);
  bool sha = use_sha && s->sha[which][0];
  full[0] = sha ? "EVALSHA" : "EVAL";
  full[1] = sha ? s->sha[which] : script_text[which];
  full[2] = nk;
  for (int i = 0; i < 3; i++) full_lens[i] = strlen(full[i]);
  for (int i = 0; i < argc; i++) {
    full[3 + i] = argv[i];
    full_lens[3 + i] = lens[i];
  }
  redisconn_command(s->conn, 3 + argc, full, full_lens, on_reply, p);
}

/* A write made for a cluster partition's update: one FCALL of the
 * cluster's library, which stores it only while the partition's lease
 * holds the request's epoch (kvreq.h, struct kv_fence). */
static void send_fenced(struct redisstore *s, struct pending *p,
                        const struct buf *key) {
  struct kvreq *r = p->req;
  char epoch[24], ttl[24];
  snprintf(epoch, sizeof epoch, "%lld", r->fence.epoch);
  snprintf(ttl, sizeof ttl, "%lld", r->ttl_ms > 0 ? r->ttl_ms : 0);
  const char *argv[13] = {"FCALL", "tgc_kv", "3", r->fence.lease, key->data,
                          r->fence.refused, epoch};
  size_t lens[13] = {5, 6, 1, strlen(r->fence.lease), key->len,
                     strlen(r->fence.refused), strlen(epoch)};
  int argc = 7;
#define ARG(str, len) (argv[argc] = (str), lens[argc++] = (len))
  switch (r->op) {
    case KV_SET:
      ARG("set", 3);
      ARG(r->value, r->value_len);
      ARG(ttl, strlen(ttl));
      break;
    case KV_DELETE:
      ARG("del", 3);
      break;
    default:   /* KV_CAS */
      ARG("cas", 3);
      ARG(r->expected ? "1" : "0", 1);
      ARG(r->expected ? r->expected : "", r->expected_len);
      ARG(r->value ? "1" : "0", 1);
      ARG(r->value ? r->value : "", r->value_len);
      ARG(ttl, strlen(ttl));
      break;
  }
#undef ARG
  redisconn_command(s->conn, argc, argv, lens, on_reply, p);
}

static void send_req(struct redisstore *s, struct pending *p, bool use_sha) {
  struct kvreq *r = p->req;
  struct buf key = BUF_INIT;
  redis_key(r, &key);
  if (r->fence.epoch &&
      (r->op == KV_SET || r->op == KV_DELETE || r->op == KV_CAS)) {
    send_fenced(s, p, &key);
    buf_free(&key);
    return;
  }
  const char *argv[8];
  size_t lens[8];
  int argc = 0;
  char ttl[32];
  snprintf(ttl, sizeof ttl, "%lld", r->ttl_ms > 0 ? r->ttl_ms : 0);
  switch (r->op) {
    case KV_GET:
      argv[argc] = "GET", lens[argc++] = 3;
      argv[argc] = key.data, lens[argc++] = key.len;
      redisconn_command(s->conn, argc, argv, lens, on_reply, p);
      break;
    case KV_SET:
      argv[argc] = "SET", lens[argc++] = 3;
      argv[argc] = key.data, lens[argc++] = key.len;
      argv[argc] = r->value, lens[argc++] = r->value_len;
      if (r->ttl_ms > 0) {
        argv[argc] = "PX", lens[argc++] = 2;
        argv[argc] = ttl, lens[argc++] = strlen(ttl);
      }
      redisconn_command(s->conn, argc, argv, lens, on_reply, p);
      break;
    case KV_DELETE:
      argv[argc] = "DEL", lens[argc++] = 3;
      argv[argc] = key.data, lens[argc++] = key.len;
      redisconn_command(s->conn, argc, argv, lens, on_reply, p);
      break;
    case KV_CAS:
      argv[argc] = key.data, lens[argc++] = key.len;
      argv[argc] = r->expected ? "1" : "0", lens[argc++] = 1;
      argv[argc] = r->expected ? r->expected : "", lens[argc++] =
          r->expected_len;
      argv[argc] = r->value ? "1" : "0", lens[argc++] = 1;
      argv[argc] = r->value ? r->value : "", lens[argc++] = r->value_len;
      argv[argc] = ttl, lens[argc++] = strlen(ttl);
      send_script(s, p, SCRIPT_CAS, use_sha, 1, argc, argv, lens);
      break;
    case KV_LIST: {
      struct buf pattern = BUF_INIT;
      match_pattern(r, &pattern);
      struct list_cursor cur;
      if (r->cursor) parse_cursor(r->cursor, r->cursor_len, &cur);
      else memset(&cur, 0, sizeof cur), strcpy(cur.scan, "0");
      size_t want = r->limit - r->nkeys;
      char count[24], wanted[24], most[24];
      snprintf(count, sizeof count, "%zu",
               want > LIST_MIN_COUNT ? want : (size_t)LIST_MIN_COUNT);
      snprintf(wanted, sizeof wanted, "%zu", want);
      snprintf(most, sizeof most, "%d", LIST_SCANS_PER_PAGE);
      free(cur.keys);
      argv[argc] = pattern.data, lens[argc++] = pattern.len;
      argv[argc] = cur.scan, lens[argc++] = strlen(cur.scan);
      argv[argc] = count, lens[argc++] = strlen(count);
      argv[argc] = wanted, lens[argc++] = strlen(wanted);
      argv[argc] = most, lens[argc++] = strlen(most);
      send_script(s, p, SCRIPT_LIST, use_sha, 0, argc, argv, lens);
      buf_free(&pattern);
      break;
    }
  }
  buf_free(&key);
}

/* A list page starts with the keys its cursor carries; when they fill it,
 * or SCAN has gone round, Redis has nothing to add. */
static void submit_list(struct redisstore *s, struct pending *p) {
  struct kvreq *r = p->req;
  struct list_cursor cur;
  if (!r->cursor) {
    send_req(s, p, true);
    return;
  }
  if (parse_cursor(r->cursor, r->cursor_len, &cur) != 0) {
    fail(s, r, "this list cursor was not made by a Redis storage");
    free(p);
    kv_deferred_add(&s->deferred, r);
    return;
  }
  size_t take = cur.n < r->limit ? cur.n : r->limit;
  for (size_t i = 0; i < take; i++)
    kvreq_add_key(r, cur.keys[i].data, cur.keys[i].len);
  if (take < cur.n || strcmp(cur.scan, "end") == 0) {
    finish_page(r, cur.scan, cur.keys + take, cur.n - take);
    free(cur.keys);
    free(p);
    kv_deferred_add(&s->deferred, r);
    return;
  }
  /* The rest of the page comes from SCAN, going on where it stopped. */
  char *scan_only = xstrdup(cur.scan);
  free(cur.keys);
  kvreq_set_cursor(r, scan_only, strlen(scan_only));
  free(scan_only);
  send_req(s, p, true);
}

static void submit(void *impl, struct kvreq *r) {
  struct redisstore *s = impl;
  struct pending *p = xcalloc(1, sizeof *p);
  p->s = s;
  p->req = r;
  if (r->op == KV_LIST) submit_list(s, p);
  else send_req(s, p, true);
}

/* --- scripts ---------------------------------------------------------------- */

struct script_load {
  struct redisstore *s;
  enum script which;
};

static void on_script_loaded(struct redisconn *c, const redisReply *rep,
                             const char *error, void *ud) {
  struct script_load *l = ud;
  if (rep && rep->type == REDIS_REPLY_STRING && rep->len == 40)
    memcpy(l->s->sha[l->which], rep->str, 41);
  free(l);
}

/* Each new connection learns the scripts' SHAs; until the answer, and if
 * SCRIPT is not allowed to this user, EVAL sends the script itself. */
static void on_up(struct redisconn *c, void *ud) {
  struct redisstore *s = ud;
  for (int i = 0; i < SCRIPTS; i++) {
    struct script_load *l = xcalloc(1, sizeof *l);
    l->s = s;
    l->which = (enum script)i;
    const char *argv[] = {"SCRIPT", "LOAD", script_text[i]};
    redisconn_command(c, 3, argv, NULL, on_script_loaded, l);
  }
}

/* --- the backend ------------------------------------------------------------ */

static int check(const char *url, const char *prefix, struct buf *err) {
  struct redis_target t;
  if (redis_target_parse(url, &t, err) != 0) return -1;
  redis_target_free(&t);
  return 0;
}

static void *open_store(struct event_base *base, const char *url,
                        struct buf *err) {
  struct redisconn *c = redisconn_new(base, url, "redis storage", err);
  if (!c) return NULL;
  struct redisstore *s = xcalloc(1, sizeof *s);
  s->conn = c;
  kv_deferred_init(&s->deferred, base);
  redisconn_watch(c, on_up, NULL, s);
  return s;
}

static void describe(const char *url, const char *prefix, struct buf *out) {
  struct redis_target t;
  struct buf ignored = BUF_INIT;
  if (redis_target_parse(url, &t, &ignored) == 0) {
    buf_printf(out, "redis storage %s (prefix \"%s\")", t.name, prefix);
    redis_target_free(&t);
  } else {
    buf_printf(out, "redis storage (prefix \"%s\")", prefix);
  }
  buf_free(&ignored);
}

static void close_store(void *impl) {
  struct redisstore *s = impl;
  redisconn_free(s->conn);   /* its commands' requests are freed */
  kv_deferred_free(&s->deferred);
  free(s);
}

const struct kv_backend redisstore_backend = {
    .kind = "redis",
    .target_arg = "url",
    .target_what = "a URL redis://host:port",
    .ns_arg = "prefix",
    .ns_default = "tghost:",
    .opens_under_check = false,
    .check = check,
    .open = open_store,
    .describe = describe,
    .submit = submit,
    .run_now = NULL,
    .close = close_store,
};
