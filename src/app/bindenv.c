#include "app/bindenv.h"

#include <string.h>

#include "pipeline/runner.h"
#include "script/luaconv.h"
#include "script/luaguard.h"
#include "script/luaseq.h"

/* --- the host, as the bindings ask of it ------------------------------- */

static bool bot_started(void *ud) {
  return ((struct host *)ud)->runner != NULL;
}

static bool bot_running(void *ud) {
  struct host *h = ud;
  return h->runner && runner_is_running(h->runner);
}

static bool bot_finished(void *ud) {
  struct host *h = ud;
  return h->runner && runner_finished(h->runner);
}

static size_t bot_size(void *ud) {
  struct host *h = ud;
  return h->runner ? runner_size(h->runner) : 0;
}

static void bot_stop(void *ud, struct task *waiter) {
  runner_stop(((struct host *)ud)->runner, waiter);
}

static void bot_wait_stopped(void *ud, struct task *waiter) {
  runner_wait_stopped(((struct host *)ud)->runner, waiter);
}

static void bot_forget_waiter(void *ud, struct task *waiter) {
  struct host *h = ud;
  if (h->runner) runner_forget_waiter(h->runner, waiter);
}

static void bot_exit(void *ud, int code) {
  struct host *h = ud;
  host_set_exit_code(h, code);
  if (h->runner && !runner_finished(h->runner)) runner_stop(h->runner, NULL);
  else host_exit(h, code);
}

static bool bot_start_again(void *ud) { return host_start_again(ud); }

static struct job *start_update(void *ud, struct job_owner *owner,
                                struct update_item *u, job_end_fn on_end,
                                void *end_ud) {
  return ((struct host *)ud)->update_ops->start(owner, u, on_end, end_ud);
}

static const char *bot_identity(void *ud, size_t *len) {
  struct host *h = ud;
  *len = h->bot_info_len;
  return h->bot_info_json;
}

static struct http_client *stream_http(void *ud) {
  return host_stream_http(ud);
}

static struct child_table *children(void *ud) { return host_children(ud); }

static const struct script_host_ops host_ops = {
    bot_started,  bot_running,      bot_finished,      bot_size,
    bot_stop,     bot_wait_stopped, bot_forget_waiter, bot_exit,
    bot_start_again, start_update,  bot_identity,      stream_http,
    children};

/* --- the environment ---------------------------------------------------- */

void bindenv_init(struct script_env *env, struct host *h,
                  void (*on_unhandled)(void *ud, int64_t update_id,
                                       const char *type),
                  void *on_unhandled_ud) {
  memset(env, 0, sizeof *env);
  env->base = h->base;
  env->sched = &h->sched;
  env->http = h->http;
  env->api = h->api;
  env->calls = h->calls;
  env->storages = h->storages;
  env->jobs = h->jobs;
  env->token = h->cfg->token;
  env->check = h->cfg->check;
  env->sandbox = h->cfg->sandbox;
  env->cluster = h->cfg->cluster_url != NULL;
  env->host = &host_ops;
  env->host_ud = h;
  env->on_unhandled = on_unhandled;
  env->on_unhandled_ud = on_unhandled_ud;
  env->seq = luaseq_new();
  env->conv = luaconv_new(env);
  env->finalizers = finalizer_queue_new(env);
}

void bindenv_free(struct script_env *env) {
  /* The queue first: it references generations. */
  finalizer_queue_free(env->finalizers);
  env->finalizers = NULL;
  luaconv_free(env->conv);
  env->conv = NULL;
  luaseq_free(env->seq);
  env->seq = NULL;
}
