#include "script/luastream.h"

#include <errno.h>
#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/sse.h"
#include "script/luabind.h"
#include "script/luahttp.h"
#include "sched/task.h"

#define STREAM_MT "tghost.HttpStream"
#define DEFAULT_FIRST_BYTE_S 30.0
#define DEFAULT_IDLE_S 60.0
#define WINDOW 65536
/* curl's receive buffer: events are small, bulk bodies are not. */
#define SSE_RECV_BUFFER 4096L
#define RAW_RECV_BUFFER 16384L

struct stream_jobs;

struct lstream {
  struct http_request *req;        /* NULL once closed */
  struct task *waiter;             /* a task suspended in await */
  struct stream_jobs *jobs;        /* the job that opened it, while it lives */
  struct qnode job_node;
  char *error;                     /* why it ended, once it failed */
  FILE *body_file;                 /* an InputFile body from disk */
  bool done;                       /* the done callback ran */
  bool body_streamed;              /* write() feeds the body */
  bool sse;
  struct sse_parser parser;
};

/* The streams a job opened: closed when it ends, however it ends. */
struct stream_jobs {
  struct job_cleanup cleanup;
  struct qlist streams;
};

static void stream_wake(struct lstream *s);

static void set_error(struct lstream *s, const char *msg) {
  if (s->error) return;
  s->error = xstrdup(msg);
}

/* Ends the transfer (closing its connection, if it was not done) and
 * frees what it holds; the handle stays, answering "error". */
static void stream_close(struct lstream *s, const char *why) {
  set_error(s, why);
  if (s->req) {
    http_request_free(s->req);   /* cancels a transfer in flight */
    s->req = NULL;
  }
  if (s->body_file) {
    fclose(s->body_file);
    s->body_file = NULL;
  }
  if (s->jobs) {
    qlist_remove(&s->jobs->streams, &s->job_node);
    s->jobs = NULL;
  }
  if (s->sse) {
    sse_free(&s->parser);
    s->sse = false;
  }
  stream_wake(s);
}

static void on_job_end(struct job *job, struct job_cleanup *c) {
  struct stream_jobs *sj = (struct stream_jobs *)c;
  struct qnode *n;
  while ((n = qlist_front(&sj->streams))) {
    struct lstream *s = qlist_entry(n, struct lstream, job_node);
    stream_close(s, "closed: the handler that opened it has ended");
  }
  free(sj);
}

static void attach_to_job(struct lstream *s, struct job *job) {
  struct job_cleanup *c = job_find_cleanup(job, on_job_end);
  struct stream_jobs *sj = (struct stream_jobs *)c;
  if (!sj) {
    sj = xcalloc(1, sizeof *sj);
    sj->cleanup.fn = on_job_end;
    qlist_init(&sj->streams);
    job_add_cleanup(job, &sj->cleanup);
  }
  qlist_push_back(&sj->streams, &s->job_node);
  s->jobs = sj;
}

/* --- waking ------------------------------------------------------------- */

static int push_again(lua_State *co, void *data) {
  if (!co) return 0;
  lua_pushboolean(co, 1);
  lua_pushliteral(co, "again");
  return 2;
}

static void wait_cancel(void *data) {
  struct lstream *s = data;
  s->waiter = NULL;
}

static const struct task_wait_ops stream_wait_ops = {"tghost.http stream",
                                                     wait_cancel};

static void stream_wake(struct lstream *s) {
  struct task *t = s->waiter;
  if (!t) return;
  s->waiter = NULL;
  task_wake(t, push_again, s);
}

static void on_notify(struct http_request *req, void *ud) { stream_wake(ud); }

static void on_done(struct http_request *req, void *ud) {
  struct lstream *s = ud;
  s->done = true;
  if (s->body_file) {
    fclose(s->body_file);
    s->body_file = NULL;
  }
  stream_wake(s);
}

/* --- open --------------------------------------------------------------- */

static double opt_seconds(lua_State *L, const char *name, double def,
                          bool zero_ok) {
  double v = def;
  lua_getfield(L, 1, name);
  if (!lua_isnil(L, -1)) {
    if (!lua_isnumber(L, -1) || lua_tonumber(L, -1) > 86400 ||
        lua_tonumber(L, -1) < 0 || (!zero_ok && !(lua_tonumber(L, -1) > 0)))
      luaL_error(L, "tghost.http: %s must be a number of seconds (%s "
                    "<= 86400%s)", name, zero_ok ? "0" : "0 <",
                 zero_ok ? "; 0 turns it off" : "");
    v = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

static long to_ms(double s) { return (long)ceil(s * 1000); }

/* An InputFile body: a file on disk goes as it is read, bytes in memory
 * as a plain body. Raises when the file cannot be opened. */
static void set_file_body(lua_State *L, struct lstream *s, int idx) {
  lua_getfield(L, idx, "path");
  if (lua_isstring(L, -1)) {
    const char *path = lua_tostring(L, -1);
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0) {
      int e = errno;
      if (f) fclose(f);
      luaL_error(L, "tghost.http: cannot read the body %s: %s", path,
                 strerror(e));
    }
    s->body_file = f;
    http_request_set_body_file(s->req, f,
                               S_ISREG(st.st_mode) ? (long long)st.st_size
                                                   : -1);
  } else {
    lua_getfield(L, idx, "data");
    size_t len;
    const char *data = lua_tolstring(L, -1, &len);
    char *copy = xmalloc(len + 1);
    memcpy(copy, data ? data : "", len);
    copy[len] = '\0';
    http_request_set_body(s->req, copy, len);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* open(opts, mode) -> stream; raises on misuse, returns nil, message when
 * the request cannot be started. */
static int l_open(lua_State *L) {
  struct script_env *env = env_of(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  const char *mode = luaL_optstring(L, 2, "raw");
  bool sse = strcmp(mode, "sse") == 0;
  lua_settop(L, 1);
  static const char *const extra[] = {"timeout", "first_byte_timeout",
                                      "idle_timeout", "max_event", NULL};
  double timeout = opt_seconds(L, "timeout", 0, true);
  double first_byte = opt_seconds(L, "first_byte_timeout",
                                  DEFAULT_FIRST_BYTE_S, true);
  double idle = opt_seconds(L, "idle_timeout", DEFAULT_IDLE_S, true);
  lua_Integer max_event = SSE_DEFAULT_MAX_EVENT;
  lua_getfield(L, 1, "max_event");
  if (!lua_isnil(L, -1)) {
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) <= 0)
      return luaL_error(L, "tghost.http: max_event must be a positive integer "
                           "(bytes)");
    max_event = lua_tointeger(L, -1);
  }
  lua_pop(L, 1);
  lua_getfield(L, 1, "body");
  int btype = lua_type(L, -1);
  bool file_body = btype == LUA_TUSERDATA &&
                   luaL_testudata(L, -1, "tghost.InputFile") != NULL;
  if (btype == LUA_TUSERDATA && !file_body)
    return luaL_error(L, "tghost.http: body must be a string, a table (sent "
                         "as JSON), a function or an InputFile");
  lua_pop(L, 1);
  luabind_check_network(L, "tghost.http");
  struct task *t = task_check_can_wait(L, env->sched, "tghost.http");

  /* The handle first: whatever raises from here on leaves a request its
   * __gc frees. */
  struct lstream *s = lua_newuserdatauv(L, sizeof *s, 0);   /* 2 */
  memset(s, 0, sizeof *s);
  luaL_setmetatable(L, STREAM_MT);
  struct http_client *client = env->host->stream_http(env->host_ud);
  if (!client)
    return luaL_error(L, "tghost.http: cannot set up libcurl for streams");
  s->req = luahttp_new_request(L, client, "tghost.http", extra, true);
  lua_getfield(L, 1, "body");                               /* 3 */
  if (file_body) set_file_body(L, s, 3);
  else if (btype == LUA_TFUNCTION) {
    http_request_set_body_stream(s->req);
    s->body_streamed = true;
  }
  lua_pop(L, 1);
  struct http_request *req = s->req;
  http_request_set_timeout(req, to_ms(timeout));
  http_request_set_recv_buffer(req, sse ? SSE_RECV_BUFFER : RAW_RECV_BUFFER);
  http_request_keep_headers(req, true);
  http_request_set_stream(req, WINDOW, on_notify, s);
  http_request_set_stream_timeouts(req, to_ms(first_byte), to_ms(idle));
  if (sse) {
    sse_init(&s->parser, (size_t)max_event);
    s->sse = true;
    http_request_add_header(req, "Accept: text/event-stream");
    http_request_add_header(req, "Cache-Control: no-cache");
  }
  if (http_request_start(req, on_done, s) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, http_request_error(req));
    stream_close(s, "could not start");
    return 2;
  }
  attach_to_job(s, task_job(t));
  return 1;
}

static struct lstream *check_stream(lua_State *L) {
  return luaL_checkudata(L, 1, STREAM_MT);
}

/* The failure of a finished transfer, as the script sees it. */
static void push_failure(lua_State *L, struct lstream *s) {
  if (s->error) {
    lua_pushstring(L, s->error);
    return;
  }
  lua_pushstring(L, http_request_error(s->req));
}

/* Suspends the caller until the stream changes; returns "again". */
static int wait_change(lua_State *L, struct lstream *s) {
  struct script_env *env = env_of(L);
  struct task *t = task_check_can_wait(L, env->sched, "tghost.http");
  if (s->waiter && s->waiter != t)
    return luaL_error(L, "tghost.http: another task is already reading this "
                         "stream");
  s->waiter = t;
  lua_settop(L, 1);   /* the handle stays on this frame while it waits */
  return task_wait(L, t, &stream_wait_ops, s);
}

struct event_out {
  lua_State *L;
  bool got;
};

static bool push_event(void *ud, const struct sse_event *ev) {
  struct event_out *o = ud;
  lua_State *L = o->L;
  lua_createtable(L, 0, 4);
  lua_pushlstring(L, ev->type, ev->type_len);
  lua_setfield(L, -2, "event");
  lua_pushlstring(L, ev->data, ev->data_len);
  lua_setfield(L, -2, "data");
  if (ev->id_len) {
    lua_pushlstring(L, ev->id, ev->id_len);
    lua_setfield(L, -2, "id");
  }
  if (ev->retry_ms >= 0) {
    lua_pushinteger(L, ev->retry_ms);
    lua_setfield(L, -2, "retry");
  }
  o->got = true;
  return false;   /* one at a time: the rest stays for the next await */
}

/* stream:await("head" | "data" | "event") -> see luastream.h */
static int l_await(lua_State *L) {
  static const char *const whats[] = {"head", "data", "event", NULL};
  struct lstream *s = check_stream(L);
  int what = luaL_checkoption(L, 2, NULL, whats);
  luaL_checkstack(L, 8, "tghost.http stream");
  if (!s->req) {
    lua_pushliteral(L, "error");
    lua_pushstring(L, s->error ? s->error : "closed");
    return 2;
  }
  struct http_request *req = s->req;
  if (what == 0) {
    if (http_stream_has_head(req) || (s->done && http_request_ok(req))) {
      lua_pushliteral(L, "head");
      lua_pushinteger(L, http_stream_has_head(req) ? http_stream_status(req)
                                                  : http_request_status(req));
      luahttp_push_headers(L, http_request_headers(req));
      return 3;
    }
  } else if (what == 1) {
    const char *data;
    size_t n = http_stream_peek(req, &data);
    if (n) {
      lua_pushliteral(L, "data");
      lua_pushlstring(L, data, n);
      http_stream_consume(req, n);
      return 2;
    }
  } else {
    if (!s->sse) return luaL_error(L, "tghost.http: not an event stream");
    for (;;) {
      const char *data;
      size_t n = http_stream_peek(req, &data);
      if (!n) break;
      lua_pushliteral(L, "event");
      struct event_out o = {L, false};
      size_t used = 0;
      enum sse_status st = sse_feed(&s->parser, data, n, &used, push_event, &o);
      /* Consuming may let curl hand over more before it returns. */
      http_stream_consume(req, used);
      if (st == SSE_TOO_LARGE) {
        char msg[128];
        snprintf(msg, sizeof msg, "a server-sent event or line was larger "
                 "than max_event (%zu bytes)", s->parser.max_event);
        stream_close(s, msg);
        lua_pushliteral(L, "error");
        lua_pushstring(L, s->error);
        return 2;
      }
      if (o.got) return 2;
      lua_pop(L, 1);
    }
  }
  if (s->done) {
    if (!http_request_ok(req)) {
      lua_pushliteral(L, "error");
      push_failure(L, s);
      return 2;
    }
    if (what == 2) sse_finish(&s->parser);
    lua_pushliteral(L, "end");
    return 1;
  }
  if (http_stream_wants_body(req)) {
    lua_pushliteral(L, "body");
    return 1;
  }
  return wait_change(L, s);
}

/* stream:write(piece) / stream:write(nil): the next piece of the body, or
 * its end. Returns true, or false, message once the stream is closed. */
static int l_write(lua_State *L) {
  struct lstream *s = check_stream(L);
  if (!s->body_streamed)
    return luaL_error(L, "tghost.http: this request's body is not a "
                         "function");
  if (!lua_isnoneornil(L, 2) && lua_type(L, 2) != LUA_TSTRING)
    return luaL_error(L, "tghost.http: a body function must return strings "
                         "(nil at the end), not %s", luaL_typename(L, 2));
  if (!s->req || s->done) {
    lua_pushboolean(L, 0);
    lua_pushstring(L, s->error ? s->error : "the transfer is over");
    return 2;
  }
  size_t len = 0;
  const char *data = lua_isstring(L, 2) ? lua_tolstring(L, 2, &len) : NULL;
  http_stream_write_body(s->req, data, len, data == NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* stream:fail(message): the body function raised: end the transfer. */
static int l_fail(lua_State *L) {
  struct lstream *s = check_stream(L);
  stream_close(s, luaL_optstring(L, 2, "failed"));
  return 0;
}

static int l_close(lua_State *L) {
  struct lstream *s = check_stream(L);
  stream_close(s, "closed");
  return 0;
}

static int l_gc(lua_State *L) {
  struct lstream *s = check_stream(L);
  s->waiter = NULL;   /* a collected handle has no task waiting on it */
  stream_close(s, "closed");
  free(s->error);
  s->error = NULL;
  return 0;
}

int luaopen_tghost_httpstream(lua_State *L) {
  static const luaL_Reg methods[] = {{"await", l_await},
                                     {"write", l_write},
                                     {"fail", l_fail},
                                     {"close", l_close},
                                     {NULL, NULL}};
  if (luaL_newmetatable(L, STREAM_MT)) {
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_close);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {{"open", l_open}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
