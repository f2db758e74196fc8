#include "store/redisjobs.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/redisconn.h"

/* ARGV: P, id ("" for a new one), the new id's prefix, schedule, due,
 * body, keep_if_same (1/0). Answers {id, existed}. */
static const char PUT_SCRIPT[] =
    "local P, id = ARGV[1], ARGV[2]\n"
    "if id == '' then\n"
    "  repeat id = ARGV[3] .. redis.call('INCR', P .. 'seq')\n"
    "  until redis.call('EXISTS', P .. 'job:' .. id) == 0\n"
    "end\n"
    "local k = P .. 'job:' .. id\n"
    "local old = redis.call('HGET', k, 'schedule')\n"
    "if old and ARGV[7] == '1' and old == ARGV[4] then\n"
    "  redis.call('HSET', k, 'body', ARGV[6])\n"
    "  return {id, 1}\n"
    "end\n"
    "redis.call('ZREM', P .. 'lease', id)\n"
    "redis.call('HDEL', k, 'token', 'lease')\n"
    "redis.call('HSET', k, 'schedule', ARGV[4], 'due', ARGV[5], 'body', "
    "ARGV[6], 'attempts', 0)\n"
    "redis.call('ZADD', P .. 'due', ARGV[5], id)\n"
    "redis.call('ZADD', P .. 'ids', 0, id)\n"
    "return {id, old and 1 or 0}\n";

/* ARGV: P, id. Answers 1 if it existed. */
static const char DELETE_SCRIPT[] =
    "local P, id = ARGV[1], ARGV[2]\n"
    "redis.call('ZREM', P .. 'due', id)\n"
    "redis.call('ZREM', P .. 'lease', id)\n"
    "redis.call('ZREM', P .. 'ids', id)\n"
    "return redis.call('DEL', P .. 'job:' .. id)\n";

/* ARGV: P, then ids. Answers one record per id that exists: {id,
 * schedule, due, body, attempts, token or '', lease or ''}. */
static const char GET_SCRIPT[] =
    "local P, out = ARGV[1], {}\n"
    "for i = 2, #ARGV do\n"
    "  local f = redis.call('HMGET', P .. 'job:' .. ARGV[i], 'schedule', "
    "'due', 'body', 'attempts', 'token', 'lease')\n"
    "  if f[1] then\n"
    "    out[#out + 1] = {ARGV[i], f[1], f[2], f[3], f[4] or '0', f[5] or '', "
    "f[6] or ''}\n"
    "  end\n"
    "end\n"
    "return out\n";

/* ARGV: P, the first id ("[prefix" or "-"), the end ("(upper" or "+"),
 * limit. Answers records as GET does. */
static const char LIST_SCRIPT[] =
    "local P, out = ARGV[1], {}\n"
    "local ids = redis.call('ZRANGEBYLEX', P .. 'ids', ARGV[2], ARGV[3], "
    "'LIMIT', 0, tonumber(ARGV[4]))\n"
    "for _, id in ipairs(ids) do\n"
    "  local f = redis.call('HMGET', P .. 'job:' .. id, 'schedule', 'due', "
    "'body', 'attempts', 'token', 'lease')\n"
    "  if f[1] then\n"
    "    out[#out + 1] = {id, f[1], f[2], f[3], f[4] or '0', f[5] or '', "
    "f[6] or ''}\n"
    "  end\n"
    "end\n"
    "return out\n";

/* ARGV: P, now, limit, the claims' end, the token base. Takes the oldest
 * due or lapsed ids, up to limit. Answers {records, next due or '',
 * next lease end or '', stored, due left}. */
static const char CLAIM_SCRIPT[] =
    "local P, now, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local lapsed = redis.call('ZRANGEBYSCORE', P .. 'lease', '-inf', now, "
    "'WITHSCORES', 'LIMIT', 0, limit)\n"
    "local due = redis.call('ZRANGEBYSCORE', P .. 'due', '-inf', now, "
    "'WITHSCORES', 'LIMIT', 0, limit)\n"
    "local out, i, j = {}, 1, 1\n"
    "while #out < limit and (i <= #lapsed or j <= #due) do\n"
    "  local id, from\n"
    "  if j > #due or (i <= #lapsed and tonumber(lapsed[i + 1]) < "
    "tonumber(due[j + 1])) then\n"
    "    id, from = lapsed[i], 'lease'; i = i + 2\n"
    "  else\n"
    "    id, from = due[j], 'due'; j = j + 2\n"
    "  end\n"
    "  local k = P .. 'job:' .. id\n"
    "  redis.call('ZREM', P .. from, id)\n"
    "  if redis.call('EXISTS', k) == 1 then\n"
    "    local tok = ARGV[5] .. '.' .. (#out + 1)\n"
    "    redis.call('ZADD', P .. 'lease', ARGV[4], id)\n"
    "    redis.call('HSET', k, 'token', tok, 'lease', ARGV[4])\n"
    "    local attempts = redis.call('HINCRBY', k, 'attempts', 1)\n"
    "    local f = redis.call('HMGET', k, 'schedule', 'due', 'body')\n"
    "    out[#out + 1] = {id, f[1], f[2], f[3], tostring(attempts), tok, "
    "ARGV[4]}\n"
    "  else\n"
    "    redis.call('ZREM', P .. 'ids', id)\n"
    "  end\n"
    "end\n"
    "local nd = redis.call('ZRANGE', P .. 'due', 0, 0, 'WITHSCORES')\n"
    "local nl = redis.call('ZRANGE', P .. 'lease', 0, 0, 'WITHSCORES')\n"
    "return {out, nd[2] or '', nl[2] or '', redis.call('ZCARD', P .. 'ids'), "
    "redis.call('ZCOUNT', P .. 'due', '-inf', now)}\n";

/* ARGV: P, id, token, mode (release, delete, reschedule), due, body,
 * body given (1/0). Answers 1 if the token still held the job. */
static const char FINISH_SCRIPT[] =
    "local P, id = ARGV[1], ARGV[2]\n"
    "local k = P .. 'job:' .. id\n"
    "if redis.call('HGET', k, 'token') ~= ARGV[3] then return 0 end\n"
    "redis.call('ZREM', P .. 'lease', id)\n"
    "if ARGV[4] == 'delete' then\n"
    "  redis.call('DEL', k)\n"
    "  redis.call('ZREM', P .. 'ids', id)\n"
    "  return 1\n"
    "end\n"
    "redis.call('HDEL', k, 'token', 'lease')\n"
    "if ARGV[4] == 'release' then\n"
    "  redis.call('ZADD', P .. 'due', redis.call('HGET', k, 'due'), id)\n"
    "  return 1\n"
    "end\n"
    "redis.call('HSET', k, 'due', ARGV[5], 'attempts', 0)\n"
    "if ARGV[7] == '1' then redis.call('HSET', k, 'body', ARGV[6]) end\n"
    "redis.call('ZADD', P .. 'due', ARGV[5], id)\n"
    "return 1\n";

/* ARGV: P, the claims' new end, then id, token pairs. Answers 1/0 each. */
static const char RENEW_SCRIPT[] =
    "local P, out = ARGV[1], {}\n"
    "for i = 3, #ARGV, 2 do\n"
    "  local id = ARGV[i]\n"
    "  if redis.call('HGET', P .. 'job:' .. id, 'token') == ARGV[i + 1] then\n"
    "    redis.call('HSET', P .. 'job:' .. id, 'lease', ARGV[2])\n"
    "    redis.call('ZADD', P .. 'lease', ARGV[2], id)\n"
    "    out[#out + 1] = 1\n"
    "  else\n"
    "    out[#out + 1] = 0\n"
    "  end\n"
    "end\n"
    "return out\n";

enum script { S_PUT, S_DELETE, S_GET, S_LIST, S_CLAIM, S_FINISH, S_RENEW,
              SCRIPTS };
static const char *const script_text[SCRIPTS] = {
    PUT_SCRIPT,   DELETE_SCRIPT, GET_SCRIPT,  LIST_SCRIPT,
    CLAIM_SCRIPT, FINISH_SCRIPT, RENEW_SCRIPT};

struct redisjobs {
  struct redisconn *conn;
  char *prefix;                  /* the storage's prefix and "jobs:" */
  char sha[SCRIPTS][41];         /* "" until SCRIPT LOAD answered */
};

/* A request on its way: its arguments, kept to send again after
 * NOSCRIPT. */
struct pending {
  struct redisjobs *s;
  struct jobreq *req;
  enum script which;
  int argc;
  char **argv;
  size_t *lens;
};

static void pending_free(struct pending *p) {
  for (int i = 0; i < p->argc; i++) free(p->argv[i]);
  free(p->argv);
  free(p->lens);
  free(p);
}

static void add_arg(struct pending *p, const char *s, size_t len) {
  p->argv = xrealloc(p->argv, (size_t)(p->argc + 1) * sizeof *p->argv);
  p->lens = xrealloc(p->lens, (size_t)(p->argc + 1) * sizeof *p->lens);
  p->argv[p->argc] = xmalloc(len + 1);
  memcpy(p->argv[p->argc], s, len);
  p->argv[p->argc][len] = '\0';
  p->lens[p->argc] = len;
  p->argc++;
}

static void add_str(struct pending *p, const char *s) {
  add_arg(p, s ? s : "", s ? strlen(s) : 0);
}

static void add_int(struct pending *p, int64_t v) {
  char n[24];
  int len = snprintf(n, sizeof n, "%" PRId64, v);
  add_arg(p, n, (size_t)len);
}

static void send_pending(struct pending *p, bool use_sha);

/* --- answers ------------------------------------------------------------- */

static bool is_str(const redisReply *r) {
  return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

static int64_t as_int(const redisReply *r, int64_t dflt) {
  if (!r) return dflt;
  if (r->type == REDIS_REPLY_INTEGER) return r->integer;
  if (is_str(r) && r->len > 0) {
    char *end;
    long long v = strtoll(r->str, &end, 10);
    if (*end == '\0' || *end == '.') return v;
  }
  return dflt;
}

static char *as_str(const redisReply *r) {
  if (!is_str(r) || r->len == 0) return NULL;
  return xstrndup(r->str, r->len);
}

/* One record: {id, schedule, due, body, attempts, token, lease}. */
static bool read_rec(const redisReply *e, struct jobrec *out) {
  if (!e || e->type != REDIS_REPLY_ARRAY || e->elements < 7) return false;
  for (int i = 0; i < 4; i++)
    if (!is_str(e->element[i])) return false;
  memset(out, 0, sizeof *out);
  out->id = xstrndup(e->element[0]->str, e->element[0]->len);
  out->schedule = xstrndup(e->element[1]->str, e->element[1]->len);
  out->due_ms = as_int(e->element[2], 0);
  out->body = xmalloc(e->element[3]->len + 1);
  memcpy(out->body, e->element[3]->str, e->element[3]->len);
  out->body[e->element[3]->len] = '\0';
  out->body_len = e->element[3]->len;
  out->attempts = (int)as_int(e->element[4], 0);
  out->token = as_str(e->element[5]);
  out->lease_ms = as_int(e->element[6], 0);
  return true;
}

static bool read_recs(const redisReply *rep, struct jobreq *r) {
  if (!rep || rep->type != REDIS_REPLY_ARRAY) return false;
  for (size_t i = 0; i < rep->elements; i++) {
    struct jobrec rec;
    if (!read_rec(rep->element[i], &rec)) return false;
    jobreq_add_rec(r, &rec);
    jobrec_free(&rec);
  }
  return true;
}

static void fail(struct redisjobs *s, struct jobreq *r, const char *why) {
  jobreq_set_error(r, "redis job store %s (prefix \"%s\"): %s",
                   redisconn_name(s->conn), s->prefix, why);
}

static bool read_answer(struct jobreq *r, const redisReply *rep) {
  switch (r->op) {
    case JOBREQ_PUT:
      if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2 ||
          !is_str(rep->element[0]))
        return false;
      if (!r->rec.id)
        r->rec.id = xstrndup(rep->element[0]->str, rep->element[0]->len);
      r->found = as_int(rep->element[1], 0) == 1;
      return true;
    case JOBREQ_DELETE:
      r->found = as_int(rep, 0) > 0;
      return rep->type == REDIS_REPLY_INTEGER;
    case JOBREQ_GET:
      if (!read_recs(rep, r)) return false;
      r->found = r->nrecs > 0;
      return true;
    case JOBREQ_LIST:
      return read_recs(rep, r);
    case JOBREQ_CLAIM: {
      if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 5 ||
          !read_recs(rep->element[0], r))
        return false;
      int64_t next_due = as_int(rep->element[1], -1);
      int64_t next_lease = as_int(rep->element[2], -1);
      r->next_ms = next_due;
      if (next_lease >= 0 && (r->next_ms < 0 || next_lease < r->next_ms))
        r->next_ms = next_lease;
      r->oldest_due_ms = next_due >= 0 && next_due <= r->now_ms ? next_due : -1;
      r->stored = (long)as_int(rep->element[3], -1);
      r->due = (long)as_int(rep->element[4], -1);
      return true;
    }
    case JOBREQ_FINISH:
      r->found = as_int(rep, 0) == 1;
      return rep->type == REDIS_REPLY_INTEGER;
    case JOBREQ_RENEW:
      if (rep->type != REDIS_REPLY_ARRAY || rep->elements != r->nrecs)
        return false;
      r->held = xcalloc(r->nrecs ? r->nrecs : 1, sizeof *r->held);
      for (size_t i = 0; i < r->nrecs; i++)
        r->held[i] = as_int(rep->element[i], 0) == 1;
      return true;
  }
  return false;
}

static void on_reply(struct redisconn *c, const redisReply *rep,
                     const char *error, void *ud) {
  struct pending *p = ud;
  struct jobreq *r = p->req;
  if (!rep && !error) {   /* teardown */
    jobreq_free(r);
    pending_free(p);
    return;
  }
  if (error) {
    jobreq_set_error(r, "%s", error);
  } else if (rep->type == REDIS_REPLY_ERROR &&
             strncmp(rep->str, "NOSCRIPT", 8) == 0) {
    send_pending(p, false);   /* Redis forgot the script: send it whole */
    return;
  } else if (rep->type == REDIS_REPLY_ERROR) {
    fail(p->s, r, rep->str);
  } else if (!read_answer(r, rep)) {
    fail(p->s, r, "unexpected answer to a job script");
    for (size_t i = 0; i < r->nrecs && r->op != JOBREQ_RENEW; i++)
      jobrec_free(&r->recs[i]);
    if (r->op != JOBREQ_RENEW) r->nrecs = 0;
  }
  pending_free(p);
  jobreq_complete(r);
}

/* --- requests ------------------------------------------------------------- */

static void send_pending(struct pending *p, bool use_sha) {
  struct redisjobs *s = p->s;
  int argc = p->argc + 3;
  const char **argv = xcalloc((size_t)argc, sizeof *argv);
  size_t *lens = xcalloc((size_t)argc, sizeof *lens);
  bool sha = use_sha && s->sha[p->which][0];
  argv[0] = sha ? "EVALSHA" : "EVAL";
  argv[1] = sha ? s->sha[p->which] : script_text[p->which];
  argv[2] = "0";
  for (int i = 0; i < 3; i++) lens[i] = strlen(argv[i]);
  for (int i = 0; i < p->argc; i++) {
    argv[3 + i] = p->argv[i];
    lens[3 + i] = p->lens[i];
  }
  redisconn_command(s->conn, argc, argv, lens, on_reply, p);
  free(argv);
  free(lens);
}

/* "[prefix" and "(upper" for ZRANGEBYLEX; "-" and "+" for all. */
static void lex_range(struct pending *p, const char *prefix) {
  size_t n = strlen(prefix);
  if (n == 0) {
    add_str(p, "-");
    add_str(p, "+");
    return;
  }
  struct buf from = BUF_INIT;
  buf_append_char(&from, '[');
  buf_append(&from, prefix, n);
  add_arg(p, from.data, from.len);
  buf_free(&from);
  while (n > 0 && (unsigned char)prefix[n - 1] == 0xff) n--;
  if (n == 0) {
    add_str(p, "+");
    return;
  }
  struct buf upper = BUF_INIT;
  buf_append_char(&upper, '(');
  buf_append(&upper, prefix, n);
  upper.data[upper.len - 1] = (char)((unsigned char)upper.data[upper.len - 1] + 1);
  add_arg(p, upper.data, upper.len);
  buf_free(&upper);
}

static void submit(void *impl, struct jobreq *r) {
  struct redisjobs *s = impl;
  struct pending *p = xcalloc(1, sizeof *p);
  p->s = s;
  p->req = r;
  add_str(p, s->prefix);
  switch (r->op) {
    case JOBREQ_PUT:
      p->which = S_PUT;
      add_str(p, r->rec.id);
      add_str(p, r->prefix);
      add_str(p, r->rec.schedule);
      add_int(p, r->rec.due_ms);
      add_arg(p, r->rec.body ? r->rec.body : "", r->rec.body_len);
      add_str(p, r->keep_if_same ? "1" : "0");
      break;
    case JOBREQ_DELETE:
      p->which = S_DELETE;
      add_str(p, r->rec.id);
      break;
    case JOBREQ_GET:
      p->which = S_GET;
      add_str(p, r->rec.id);
      break;
    case JOBREQ_LIST:
      p->which = S_LIST;
      lex_range(p, r->prefix ? r->prefix : "");
      add_int(p, (int64_t)r->limit);
      break;
    case JOBREQ_CLAIM: {
      p->which = S_CLAIM;
      add_int(p, r->now_ms);
      add_int(p, (int64_t)r->limit);
      add_int(p, r->lease_ms);
      char *base = jobstore_new_token(r->owner);
      add_str(p, base);
      free(base);
      break;
    }
    case JOBREQ_FINISH:
      p->which = S_FINISH;
      add_str(p, r->rec.id);
      add_str(p, r->rec.token);
      add_str(p, r->release          ? "release"
                 : r->rec.due_ms < 0 ? "delete"
                                     : "reschedule");
      add_int(p, r->rec.due_ms);
      add_arg(p, r->rec.body ? r->rec.body : "", r->rec.body ? r->rec.body_len : 0);
      add_str(p, r->rec.body ? "1" : "0");
      break;
    case JOBREQ_RENEW:
      p->which = S_RENEW;
      add_int(p, r->lease_ms);
      for (size_t i = 0; i < r->nrecs; i++) {
        add_str(p, r->recs[i].id);
        add_str(p, r->recs[i].token);
      }
      break;
  }
  send_pending(p, true);
}

/* --- scripts and the connection ---------------------------------------------- */

struct script_load {
  struct redisjobs *s;
  enum script which;
};

static void on_script_loaded(struct redisconn *c, const redisReply *rep,
                             const char *error, void *ud) {
  struct script_load *l = ud;
  if (rep && rep->type == REDIS_REPLY_STRING && rep->len == 40)
    memcpy(l->s->sha[l->which], rep->str, 41);
  free(l);
}

static void on_up(struct redisconn *c, void *ud) {
  struct redisjobs *s = ud;
  for (int i = 0; i < SCRIPTS; i++) {
    struct script_load *l = xcalloc(1, sizeof *l);
    l->s = s;
    l->which = (enum script)i;
    const char *argv[] = {"SCRIPT", "LOAD", script_text[i]};
    redisconn_command(c, 3, argv, NULL, on_script_loaded, l);
  }
}

static void *open_store(struct event_base *base, const char *url,
                        const char *ns, struct buf *err) {
  struct redisconn *c = redisconn_new(base, url, "redis job store", err);
  if (!c) return NULL;
  struct redisjobs *s = xcalloc(1, sizeof *s);
  s->conn = c;
  struct buf prefix = BUF_INIT;
  buf_printf(&prefix, "%sjobs:", ns ? ns : "tghost:");
  s->prefix = buf_steal(&prefix, NULL);
  redisconn_watch(c, on_up, NULL, s);
  return s;
}

static void describe(void *impl, struct buf *out) {
  struct redisjobs *s = impl;
  buf_printf(out, "redis job store %s (prefix \"%s\")",
             redisconn_name(s->conn), s->prefix);
}

static void close_store(void *impl) {
  struct redisjobs *s = impl;
  redisconn_free(s->conn);   /* its commands' requests are freed */
  free(s->prefix);
  free(s);
}

const struct jobstore_backend redisjobs_backend = {
    .kind = "redis",
    .shared = true,
    .open = open_store,
    .describe = describe,
    .submit = submit,
    .close = close_store,
};
