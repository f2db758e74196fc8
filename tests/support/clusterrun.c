#include "clusterrun.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"
#include "net/http.h"
#include "probe.h"

/* The bot id of TEST_TOKEN: it names the cluster's keys. */
#define TEST_BOT_ID "424242"

static const char bot_template[] =
    "local store = tghost.storage.redis(os.getenv('REDIS_URL'), 'sess:')\n"
    "bot.use(session{ storage = store,\n"
    "                 initial = function() return { ids = ',' } end })\n"
    "bot.on('message:text', function(ctx)\n"
    "  local started = math.floor(tghost.now() * 1e6)\n"
    "  local ms = %d\n"
    "  if ms > 0 then tghost.sleep(ms / 1000) end\n"
    "  local id = ctx.update.update_id\n"
    "  local s = ctx.session\n"
    "  if not s.ids:find(',' .. id .. ',', 1, true) then\n"
    "    s.ids = s.ids .. id .. ','\n"
    "  end\n"
    "  ctx:reply(string.format('u%%d r%%d %%s s%%d c%%d', id,\n"
    "                          ctx.redelivered and 1 or 0,\n"
    "                          os.getenv('MEMBER') or '?', started,\n"
    "                          math.floor(tghost.now() * 1e6)))\n"
    "end)\n"
    "run(bot, { sink = { concurrency = %d },\n"
    "           cluster = { lease = %g, partitions = 16 } })\n";

static bool redis_ready(void *ud) { return redisproc_ready(ud); }

void clusterrun_redis(struct cluster_run *r) {
  redisproc_need();
  memset(&r->redis, 0, sizeof r->redis);
  char dir[600];
  snprintf(dir, sizeof dir, "%s/redis", harness_tmpdir());
  const char *persist[] = {"--appendonly", "yes", "--appendfsync", "always",
                           NULL};
  redisproc_start(&r->redis, dir, persist);
  CHECK(run_until(redis_ready, &r->redis, 10000), "redis-server did not start");
  r->nmembers = 0;
  r->first = -1;
  r->n = 0;
  r->chat_of = NULL;
}

void clusterrun_init(struct cluster_run *r, double lease_s, int handler_ms,
                     int concurrency) {
  clusterrun_redis(r);
  char script[2048];
  snprintf(script, sizeof script, bot_template, handler_ms, concurrency,
           lease_s);
  r->script = harness_write("cluster_bot.lua", script);
}

struct proc *clusterrun_start(struct cluster_run *r, size_t i) {
  return clusterrun_start_env(r, i, NULL);
}

struct proc *clusterrun_start_env(struct cluster_run *r, size_t i,
                                  const char *const *more_env) {
  CHECK(i < CLUSTER_MAX_MEMBERS, "member %zu", i);
  const char *args[24] = {"--cluster", r->redis.url, "--no-watch"};
  size_t n = 3;
  for (size_t k = 0; r->extra_args && r->extra_args[k] && n < 23; k++)
    args[n++] = r->extra_args[k];
  args[n] = NULL;
  char url_env[400], member_env[64];
  snprintf(url_env, sizeof url_env, "REDIS_URL=%s", r->redis.url);
  /* Replies name the member and its incarnation: m<slot>.<start>. */
  snprintf(member_env, sizeof member_env, "MEMBER=m%zu.%u", i,
           ++r->starts[i]);
  const char *env[16] = {"BOT_TOKEN=" TEST_TOKEN, url_env, member_env};
  for (size_t k = 0, e = 3; more_env && more_env[k] && e < 15; k++)
    env[e++] = more_env[k];
  if (r->members[i]) proc_free(r->members[i]);
  r->members[i] = proc_start_env(r->script, args, env, true);
  if (i >= r->nmembers) r->nmembers = i + 1;
  return r->members[i];
}

void clusterrun_push(struct cluster_run *r, int n, int chats) {
  struct fakeapi *api = harness_api();
  r->chat_of = xrealloc(r->chat_of, (size_t)(r->n + n) * sizeof *r->chat_of);
  for (int i = 0; i < n; i++) {
    int64_t chat = 1000 + (r->n + i) % chats;
    int64_t id = fakeapi_push_text(api, chat, chat, "x");
    if (r->first < 0) r->first = id;
    CHECK(id == r->first + r->n + i, "update ids are not consecutive");
    r->chat_of[r->n + i] = chat;
  }
  r->n += n;
}

void clusterrun_plan(struct cluster_run *r, int64_t first, int n, int chats) {
  r->first = first;
  r->n = n;
  r->chat_of = xrealloc(r->chat_of, (size_t)n * sizeof *r->chat_of);
  for (int i = 0; i < n; i++) r->chat_of[i] = 1000 + i % chats;
}

/* --- a webhook client as Telegram is one ---------------------------------- */

struct post_lane {
  struct cluster_poster *p;
  int index;
  int next;                      /* the next update index of this lane */
  struct http_request *req;
  struct event *retry;
};

struct cluster_poster {
  struct cluster_run *r;
  const int *ports;
  int nports;
  char secret_header[160];
  int lanes;
  struct post_lane *lane;
  size_t turn;                   /* round robin over the ports */
  int done;                      /* updates answered 200 */
  size_t failures;
};

static void lane_send(struct post_lane *l);

static int lane_next(struct post_lane *l, int from) {
  struct cluster_poster *p = l->p;
  for (int i = from; i < p->r->n; i++)
    if ((int)((p->r->chat_of[i] - 1000) % p->lanes) == l->index) return i;
  return p->r->n;
}

static void on_lane_retry(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  lane_send(arg);
}

static void on_posted(struct http_request *req, void *ud) {
  struct post_lane *l = ud;
  struct cluster_poster *p = l->p;
  long status = http_request_status(req);
  http_request_free(req);
  l->req = NULL;
  if (status == 200) {
    p->done++;
    l->next = lane_next(l, l->next + 1);
    lane_send(l);
    return;
  }
  p->failures++;
  struct timeval tv = {0, 100000};
  evtimer_add(l->retry, &tv);
}

static void lane_send(struct post_lane *l) {
  struct cluster_poster *p = l->p;
  if (l->next >= p->r->n) return;
  int64_t id = p->r->first + l->next, chat = p->r->chat_of[l->next];
  char url[96];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/hook",
           p->ports[p->turn++ % (size_t)p->nports]);
  struct buf body = BUF_INIT;
  buf_printf(&body, "{\"update_id\":%lld,\"message\":{\"message_id\":%lld,"
             "\"date\":1700000000,\"chat\":{\"id\":%lld,\"type\":"
             "\"private\"},\"from\":{\"id\":%lld,\"is_bot\":false,"
             "\"first_name\":\"U\"},\"text\":\"x\"}}", (long long)id,
             (long long)id, (long long)chat, (long long)chat);
  struct http_request *req = http_request_new(curl_client(), url);
  http_request_set_method(req, "POST");
  http_request_add_header(req, "Content-Type: application/json");
  http_request_add_header(req, p->secret_header);
  size_t len;
  char *data = buf_steal(&body, &len);
  http_request_set_body(req, data, len);
  http_request_set_timeout(req, 10000);
  if (http_request_start(req, on_posted, l) != 0) {
    http_request_free(req);
    p->failures++;
    struct timeval tv = {0, 100000};
    evtimer_add(l->retry, &tv);
    return;
  }
  l->req = req;
}

struct cluster_poster *clusterrun_poster(struct cluster_run *r,
                                         const int *ports, int nports,
                                         const char *secret, int lanes) {
  struct cluster_poster *p = xcalloc(1, sizeof *p);
  p->r = r;
  p->ports = ports;
  p->nports = nports;
  snprintf(p->secret_header, sizeof p->secret_header,
           "X-Telegram-Bot-Api-Secret-Token: %s", secret);
  p->lanes = lanes;
  p->lane = xcalloc((size_t)lanes, sizeof *p->lane);
  for (int i = 0; i < lanes; i++) {
    struct post_lane *l = &p->lane[i];
    l->p = p;
    l->index = i;
    l->next = lane_next(l, 0);
    l->retry = evtimer_new(harness_base(), on_lane_retry, l);
    lane_send(l);
  }
  return p;
}

bool clusterrun_posted(const struct cluster_poster *p) {
  return p->done >= p->r->n;
}

size_t clusterrun_post_failures(const struct cluster_poster *p) {
  return p->failures;
}

void clusterrun_poster_free(struct cluster_poster *p) {
  for (int i = 0; i < p->lanes; i++) {
    if (p->lane[i].req) http_request_free(p->lane[i].req);
    event_free(p->lane[i].retry);
  }
  free(p->lane);
  free(p);
}

int clusterrun_ingress_holder(struct cluster_run *r) {
  redisContext *c = redisproc_connect(&r->redis);
  redisReply *rep = redisproc_cmd(c, "GET tgc:" TEST_BOT_ID ":lease:in");
  int found = -1;
  if (rep->type == REDIS_REPLY_STRING) {
    /* "<epoch> <host>:<pid>:<nonce>" */
    const char *member = strchr(rep->str, ' ');
    const char *colon = member ? strchr(member, ':') : NULL;
    int pid = colon ? atoi(colon + 1) : -1;
    for (size_t i = 0; i < r->nmembers; i++)
      if (r->members[i] && !proc_exited(r->members[i]) &&
          proc_pid(r->members[i]) == pid)
        found = (int)i;
  }
  freeReplyObject(rep);
  redisFree(c);
  return found;
}

/* A first run (r0) of an update: when it started, and when it called
 * reply (before it ended), by the machine's monotonic clock, which every
 * process shares. */
struct first_run {
  int64_t chat, id;
  long long started_us, replied_us;
  char member[16];
};

static int by_chat_then_start(const void *a, const void *b) {
  const struct first_run *x = a, *y = b;
  if (x->chat != y->chat) return x->chat < y->chat ? -1 : 1;
  return x->started_us < y->started_us ? -1 : x->started_us > y->started_us;
}

/* Per chat, the first runs in the order they started must be in update
 * order, each starting after the one before it called reply (so after
 * that run was well under way to its end): a later update never starts
 * before an earlier one's run has ended. Measured where the runs happen,
 * so a call that reached the fake server late (one on the wire when its
 * process lost the partition: the zombie window) is not mistaken for a
 * reordering. */
static int check_first_runs(struct first_run *runs, size_t n, bool report) {
  qsort(runs, n, sizeof *runs, by_chat_then_start);
  int violations = 0;
  for (size_t i = 1; i < n; i++) {
    const struct first_run *a = &runs[i - 1], *b = &runs[i];
    if (a->chat != b->chat) continue;
    if (b->id > a->id && b->started_us >= a->replied_us) continue;
    if (violations++ < 5 && report)
      fprintf(stderr, "order violation in chat %lld: update %lld (%s) ran "
              "%.3f-%.3f s, then update %lld (%s) started at %.3f s\n",
              (long long)a->chat, (long long)a->id, a->member,
              a->started_us / 1e6, a->replied_us / 1e6, (long long)b->id,
              b->member, b->started_us / 1e6);
  }
  return violations;
}

/* Replies per update: how many, and how many of them unmarked (r0). */
static void count_replies(struct cluster_run *r, int *replies, int *fresh,
                          int *order_violations, bool report) {
  struct fakeapi *api = harness_api();
  memset(replies, 0, (size_t)r->n * sizeof *replies);
  memset(fresh, 0, (size_t)r->n * sizeof *fresh);
  size_t nruns = 0, cap = (size_t)r->n + 16;
  struct first_run *runs = xcalloc(cap, sizeof *runs);
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "sendMessage") != 0) continue;
    char *t = fake_call_string(c, "text");
    long long id, started = 0, replied = 0;
    int again;
    char member[16] = "?";
    if (t && sscanf(t, "u%lld r%d %15s s%lld c%lld", &id, &again, member,
                    &started, &replied) >= 2 &&
        id >= r->first && id < r->first + r->n) {
      int k = (int)(id - r->first);
      replies[k]++;
      if (!again) {
        fresh[k]++;
        if (nruns == cap) {
          cap *= 2;
          runs = xrealloc(runs, cap * sizeof *runs);
        }
        struct first_run *f = &runs[nruns++];
        f->chat = r->chat_of[k];
        f->id = id;
        f->started_us = started;
        f->replied_us = replied;
        snprintf(f->member, sizeof f->member, "%s", member);
      }
    }
    free(t);
  }
  *order_violations = check_first_runs(runs, nruns, report);
  free(runs);
}

struct all_answered {
  struct cluster_run *r;
  int *replies, *fresh;
};

static bool every_update_answered(void *ud) {
  struct all_answered *a = ud;
  int violations;
  count_replies(a->r, a->replies, a->fresh, &violations, false);
  for (int i = 0; i < a->r->n; i++)
    if (!a->replies[i]) return false;
  return true;
}

bool clusterrun_wait_all(struct cluster_run *r, int timeout_ms) {
  struct all_answered a = {r, xcalloc((size_t)r->n, sizeof(int)),
                           xcalloc((size_t)r->n, sizeof(int))};
  uint64_t end = harness_now_ms() + (uint64_t)timeout_ms;
  bool done = false;
  /* Counting is O(calls): once every 200 ms is plenty. */
  while (!(done = every_update_answered(&a)) && harness_now_ms() < end)
    run_for(200);
  free(a.replies);
  free(a.fresh);
  return done;
}

/* Marks in seen the updates each chat's session lists, and counts the
 * sessions whose list is out of order. */
static void read_sessions(struct cluster_run *r, redisContext *c, char *seen,
                          int *disorder) {
  memset(seen, 0, (size_t)r->n);
  *disorder = 0;
  int64_t max_chat = 0;
  for (int i = 0; i < r->n; i++)
    if (r->chat_of[i] > max_chat) max_chat = r->chat_of[i];
  for (int64_t chat = 1000; chat <= max_chat; chat++) {
    redisReply *rep = redisproc_cmd(c, "GET sess:%lld", (long long)chat);
    if (rep->type == REDIS_REPLY_STRING) {
      struct json_reader at;
      struct json_slice ids;
      struct buf text = BUF_INIT;
      if (json_find_member(rep->str, rep->len, "ids", &at) &&
          json_read_string(&at, &ids))
        json_unescape(&ids, &text);
      int64_t prev = -1;
      for (char *p = text.data; p && *p;) {
        char *end;
        long long id = strtoll(p, &end, 10);
        if (end != p) {
          if (id <= prev) (*disorder)++;
          prev = id;
          if (id >= r->first && id < r->first + r->n &&
              r->chat_of[id - r->first] == chat)
            seen[id - r->first] = 1;
        }
        p = *end ? end + 1 : end;
      }
      buf_free(&text);
    }
    freeReplyObject(rep);
  }
}

struct cluster_tally clusterrun_tally(struct cluster_run *r) {
  struct cluster_tally t = {0};
  int *replies = xcalloc((size_t)r->n, sizeof *replies);
  int *fresh = xcalloc((size_t)r->n, sizeof *fresh);
  count_replies(r, replies, fresh, &t.order_violations, true);
  for (int i = 0; i < r->n; i++) {
    if (!replies[i]) t.lost++;
    if (replies[i] > 1) t.duplicates += replies[i] - 1;
    if (fresh[i] > 1) t.unmarked++;
  }
  /* The sessions: per chat, its updates in order, each once. A session
   * is written after its handler replied, so the last writes may still be
   * on their way when the last reply arrives: they get 5 s to land (a
   * write that was lost never does). */
  redisContext *c = redisproc_connect(&r->redis);
  char *seen = xcalloc((size_t)r->n, 1);
  for (uint64_t until = harness_now_ms() + 5000;;) {
    read_sessions(r, c, seen, &t.session_disorder);
    int missing = 0;
    for (int i = 0; i < r->n; i++) missing += !seen[i];
    if (missing == 0 || harness_now_ms() >= until) break;
    run_for(100);
  }
  for (int i = 0; i < r->n; i++) {
    if (seen[i]) continue;
    if (t.session_missing++ < 5) {
      /* What the fake server got for it, for the log of a failed run. */
      int64_t id = r->first + i;
      redisReply *s = redisproc_cmd(c, "GET sess:%lld",
                                    (long long)r->chat_of[i]);
      fprintf(stderr, "update %lld is not in chat %lld's session (%s); its "
              "replies:\n", (long long)id, (long long)r->chat_of[i],
              s->type == REDIS_REPLY_STRING ? s->str : "none");
      freeReplyObject(s);
      struct fakeapi *api = harness_api();
      char prefix[32];
      snprintf(prefix, sizeof prefix, "u%lld ", (long long)id);
      for (size_t k = 0; k < fakeapi_call_count(api); k++) {
        const struct fake_call *call = fakeapi_call(api, k);
        if (strcmp(call->method, "sendMessage") != 0) continue;
        char *text = fake_call_string(call, "text");
        if (text && strncmp(text, prefix, strlen(prefix)) == 0)
          fprintf(stderr, "  #%zu %s\n", k, text);
        free(text);
      }
    }
  }
  redisReply *rep =
      redisproc_cmd(c, "HGET tgc:" TEST_BOT_ID ":stats refused");
  t.refused = rep->type == REDIS_REPLY_STRING ? atoi(rep->str) : 0;
  freeReplyObject(rep);
  redisFree(c);
  free(seen);
  free(replies);
  free(fresh);
  fprintf(stderr,
          "%d updates: %d lost, %d duplicate replies, %d updates with more "
          "than one unmarked reply, %d order violations; sessions: %d "
          "missing, %d out of order; %d fenced writes refused\n",
          r->n, t.lost, t.duplicates, t.unmarked, t.order_violations,
          t.session_missing, t.session_disorder, t.refused);
  return t;
}

void clusterrun_finish(struct cluster_run *r) {
  for (size_t i = 0; i < r->nmembers; i++) {
    struct proc *p = r->members[i];
    if (p && !proc_exited(p)) proc_kill(p, SIGTERM);
  }
  for (size_t i = 0; i < r->nmembers; i++) {
    struct proc *p = r->members[i];
    if (!p) continue;
    CHECK(proc_wait(p, 30000), "member %zu did not stop", i);
    proc_check_clean(p);
  }
  redisproc_signal(&r->redis, SIGTERM);
  free(r->chat_of);
  r->chat_of = NULL;
}
