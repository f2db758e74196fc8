#include "script/luaapi.h"

#include <errno.h>
#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/apicall.h"
#include "net/botapi.h"
#include "net/botapi_methods.h"
#include "base/log.h"
#include "script/luabind.h"
#include "script/luafile.h"
#include "script/luaguard.h"
#include "script/luajson.h"
#include "sched/task.h"

/* Large transfers have no total timeout; they fail when they stall. */
#define TRANSFER_LOW_SPEED_BYTES 1024L
#define TRANSFER_LOW_SPEED_SECS 60L

/* --- Bot API calls ------------------------------------------------------- */

struct api_call {
  struct task *task;
  struct apicall *call;          /* until done */
  struct http_request *req;      /* after done */
  char *start_error;
  char method[72];
};

/* The error object a failed call raises: {method, error_code,
 * description, parameters}, with runtime.ApiError as its metatable. */
static void push_api_error(lua_State *L, const char *method,
                           const struct botapi_reply *reply) {
  lua_createtable(L, 0, 6);
  lua_pushstring(L, method);
  lua_setfield(L, -2, "method");
  if (reply->outcome == BOTAPI_API_ERROR) {
    lua_pushinteger(L, (lua_Integer)reply->error_code);
    lua_setfield(L, -2, "error_code");
  }
  static const char *const kinds[] = {"ok", "api", "bad_response", "network"};
  lua_pushstring(L, kinds[reply->outcome]);
  lua_setfield(L, -2, "kind");
  lua_pushlstring(L, reply->description.data ? reply->description.data : "",
                  reply->description.len);
  lua_setfield(L, -2, "description");
  if (reply->parameters.len &&
      luajson_decode(L, reply->parameters.ptr, reply->parameters.len,
                     NULL) == 0)
    lua_setfield(L, -2, "parameters");
  luabind_push_runtime_field(L, "ApiError");
  if (lua_istable(L, -1)) luaguard_setmetatable(L, -2);
  else lua_pop(L, 1);
}

struct result_into_lua {
  lua_State *L;
  bool pushed;
};

/* Decodes the reply's result onto the coroutine's stack as the envelope
 * is read: one pass over it, validating as it builds. */
static bool read_result_into_lua(struct json_reader *r, void *ud) {
  struct result_into_lua *to = ud;
  if (to->pushed) lua_pop(to->L, 1);   /* "result" twice: the last wins */
  int top = lua_gettop(to->L);
  struct buf scratch = BUF_INIT;
  to->pushed = luajson_decode_value(to->L, r, &scratch);
  buf_free(&scratch);
  if (!to->pushed) lua_settop(to->L, top);
  return to->pushed;
}

static int api_call_push(lua_State *co, void *data) {
  struct api_call *c = data;
  int n = 0;
  if (co) {
    struct botapi_reply reply;
    luaL_checkstack(co, 8, "Bot API result");
    struct result_into_lua to = {co, false};
    if (c->start_error) {
      memset(&reply, 0, sizeof reply);
      reply.outcome = BOTAPI_NETWORK_ERROR;
      buf_append_str(&reply.description, c->start_error);
    } else {
      botapi_parse_reply_with(c->req, &reply, read_result_into_lua, &to);
    }
    if (reply.outcome == BOTAPI_OK && !to.pushed) {
      reply.outcome = BOTAPI_BAD_RESPONSE;
      buf_reset(&reply.description);
      buf_printf(&reply.description, "bad response (HTTP %ld): \"ok\": true "
                 "without a result", reply.http_status);
    }
    if (reply.outcome == BOTAPI_OK) {
      lua_pushboolean(co, 1);
      lua_insert(co, -2);
      n = 2;
    } else {
      if (to.pushed) lua_pop(co, 1);
      lua_pushboolean(co, 0);
      push_api_error(co, c->method, &reply);
      n = 2;
    }
    botapi_reply_free(&reply);
  }
  http_request_free(c->req);
  free(c->start_error);
  free(c);
  return n;
}

static void api_call_done(struct http_request *req, const char *error,
                          void *ud) {
  struct api_call *c = ud;
  c->call = NULL;
  c->req = req;
  if (error) c->start_error = xstrdup(error);
  task_wake(c->task, api_call_push, c);
}

static void api_call_cancel(void *data) {
  struct api_call *c = data;
  if (c->call) apicall_cancel(c->call);
  free(c);
}

static const struct task_wait_ops api_call_wait = {"Bot API call",
                                                    api_call_cancel};

/* The chat a call goes to, for the throttle: params.chat_id as text. */
static void chat_of(lua_State *L, int params, char *key, size_t size,
                    bool *is_group) {
  key[0] = '\0';
  *is_group = false;
  if (!lua_istable(L, params)) return;
  int type = lua_getfield(L, params, "chat_id");
  if (type == LUA_TNUMBER && lua_isinteger(L, -1)) {
    long long id = (long long)lua_tointeger(L, -1);
    snprintf(key, size, "%lld", id);
    *is_group = id < 0;
  } else if (type == LUA_TSTRING) {
    snprintf(key, size, "%s", lua_tostring(L, -1));
    *is_group = key[0] == '@' || key[0] == '-';
  }
  lua_pop(L, 1);
}

static int raise_msg(lua_State *L, const char *what, const char *fmt,
                     struct buf *b1, struct buf *b2) {
  lua_pushfstring(L, fmt, what, b1->data ? b1->data : "");
  buf_free(b1);
  if (b2) buf_free(b2);
  return lua_error(L);
}

/* api.call(method, params [, opts]) -> result, or raises an ApiError.
 * opts.retry = false: a 429 is raised at once (ctx:replyStream's previews
 * back off themselves rather than wait in a retry). */
static int l_call(lua_State *L) {
  struct script_env *env = env_of(L);
  const char *method = luaL_checkstring(L, 1);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  char what[96];
  snprintf(what, sizeof what, "bot.api.%s", method);
  luabind_check_network(L, what);
  struct task *t = task_check_can_wait(L, env->sched, what);

  struct buf err = BUF_INIT;
  struct http_request *req;
  bool upload = lua_istable(L, 2) && luafile_has_file(L, 2);
  if (upload) {
    req = botapi_request(env->api, method, &err);
    if (!req) return raise_msg(L, what, "%s: %s", &err, NULL);
    curl_mime *mime = http_request_new_mime(req);
    if (!mime || luafile_build_multipart(L, 2, mime, &err) != 0) {
      if (mime) curl_mime_free(mime);
      http_request_free(req);
      if (!err.len) buf_append_str(&err, "cannot build the upload");
      return raise_msg(L, what, "%s: %s", &err, NULL);
    }
    http_request_set_mime(req, mime);
    http_request_set_timeout(req, 0);
    http_request_set_low_speed(req, TRANSFER_LOW_SPEED_BYTES,
                               TRANSFER_LOW_SPEED_SECS);
  } else {
    struct buf body = BUF_INIT;
    if (lua_istable(L, 2)) {
      if (luajson_encode(L, 2, &body, &err) != 0)
        return raise_msg(L, what, "%s: cannot encode the parameters: %s",
                         &err, &body);
    } else {
      buf_append_str(&body, "{}");
    }
    size_t len;
    char *json = buf_steal(&body, &len);
    req = botapi_request_json(env->api, method, json, len, &err);
    if (!req) return raise_msg(L, what, "%s: %s", &err, NULL);
  }

  char chat[80];
  struct apicall_params p = {method, NULL, false, luabind_fields(L), false};
  if (lua_istable(L, 3) && lua_getfield(L, 3, "retry") == LUA_TBOOLEAN)
    p.no_retry = !lua_toboolean(L, -1);
  chat_of(L, 2, chat, sizeof chat, &p.is_group);
  if (chat[0]) p.chat_key = chat;
  struct api_call *c = xcalloc(1, sizeof *c);
  c->task = t;
  snprintf(c->method, sizeof c->method, "%s", method);
  c->call = apicall_start(env->calls, &p, req, api_call_done, c, &err);
  if (!c->call) {
    free(c);
    return raise_msg(L, what, "%s: %s", &err, NULL);
  }
  return task_wait(L, t, &api_call_wait, c);
}

/* --- configuration ------------------------------------------------------- */

static double num_field(lua_State *L, int t, const char *name, double def,
                        double min, double max) {
  double v = def;
  int type = lua_getfield(L, t, name);
  if (type != LUA_TNIL) {
    if (type != LUA_TNUMBER)
      luaL_error(L, "bot.api.config: %s must be a number", name);
    v = lua_tonumber(L, -1);
    if (isnan(v) || v < min || v > max) {
      /* lua_pushfstring knows no %g. */
      char msg[160];
      snprintf(msg, sizeof msg, "bot.api.config: %s must be between %g and %g",
               name, min, max);
      luaL_error(L, "%s", msg);
    }
  }
  lua_pop(L, 1);
  return v;
}

static void push_config(lua_State *L, const struct apicall_config *c) {
  lua_createtable(L, 0, 2);
  if (c->max_retry_attempts > 0) {
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, c->max_retry_attempts);
    lua_setfield(L, -2, "maxRetryAttempts");
    lua_pushnumber(L, c->max_delay_s);
    lua_setfield(L, -2, "maxDelaySeconds");
  } else {
    lua_pushboolean(L, 0);
  }
  lua_setfield(L, -2, "autoRetry");
  if (c->throttle) {
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, c->limits.global_per_s);
    lua_setfield(L, -2, "globalPerSecond");
    lua_pushnumber(L, 1000.0 / (double)(c->limits.chat_interval_ms > 0
                                            ? c->limits.chat_interval_ms : 1));
    lua_setfield(L, -2, "chatPerSecond");
    lua_pushinteger(L, c->limits.group_per_min);
    lua_setfield(L, -2, "groupPerMinute");
  } else {
    lua_pushboolean(L, 0);
  }
  lua_setfield(L, -2, "throttle");
}

/* api.config([opts]) -> the configuration now in force. */
static int l_config(lua_State *L) {
  struct script_env *env = env_of(L);
  struct apicall_config c = *apicalls_config(env->calls);
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    static const char *const top[] = {"autoRetry", "throttle", NULL};
    luabind_check_keys(L, 1, "bot.api.config", "", top);
    int type = lua_getfield(L, 1, "autoRetry");
    if (type == LUA_TBOOLEAN) {
      struct apicall_config d;
      apicall_config_default(&d);
      c.max_retry_attempts = lua_toboolean(L, -1) ? d.max_retry_attempts : 0;
      c.max_delay_s = d.max_delay_s;
    } else if (type == LUA_TTABLE) {
      static const char *const keys[] = {"maxRetryAttempts", "maxDelaySeconds",
                                         NULL};
      int i = lua_gettop(L);
      luabind_check_keys(L, i, "bot.api.config", "autoRetry.", keys);
      c.max_retry_attempts =
          (int)num_field(L, i, "maxRetryAttempts", 3, 0, 1000);
      c.max_delay_s = num_field(L, i, "maxDelaySeconds", 60, 0, 86400);
    } else if (type != LUA_TNIL) {
      return luaL_error(L, "bot.api.config: autoRetry must be a boolean or "
                           "a table");
    }
    lua_pop(L, 1);
    type = lua_getfield(L, 1, "throttle");
    if (type == LUA_TBOOLEAN) {
      c.throttle = lua_toboolean(L, -1);
      throttle_limits_default(&c.limits);
    } else if (type == LUA_TTABLE) {
      static const char *const keys[] = {"globalPerSecond", "chatPerSecond",
                                         "groupPerMinute", NULL};
      int i = lua_gettop(L);
      luabind_check_keys(L, i, "bot.api.config", "throttle.", keys);
      struct throttle_limits d;
      throttle_limits_default(&d);
      c.throttle = true;
      c.limits.global_per_s =
          (int)num_field(L, i, "globalPerSecond", d.global_per_s, 1, 10000);
      double per_chat = num_field(L, i, "chatPerSecond", 1, 0.001, 1000);
      c.limits.chat_interval_ms = (long)(1000.0 / per_chat);
      c.limits.group_per_min =
          (int)num_field(L, i, "groupPerMinute", d.group_per_min, 1, 60);
    } else if (type != LUA_TNIL) {
      return luaL_error(L, "bot.api.config: throttle must be a boolean or a "
                           "table");
    }
    lua_pop(L, 1);
    apicalls_configure(env->calls, &c);
  }
  push_config(L, apicalls_config(env->calls));
  return 1;
}

/* --- downloads ----------------------------------------------------------- */

struct download {
  struct task *task;
  struct http_request *req;
  FILE *file;
  char *tmp_path;
  char *dest;
};

static void download_free(struct download *d, bool keep) {
  if (d->file) fclose(d->file);
  if (!keep) unlink(d->tmp_path);
  http_request_free(d->req);
  free(d->tmp_path);
  free(d->dest);
  free(d);
}

static int download_push(lua_State *co, void *data) {
  struct download *d = data;
  if (!co) {
    download_free(d, false);
    return 0;
  }
  struct http_request *req = d->req;
  long size = ftell(d->file);
  bool flushed = fflush(d->file) == 0 && !ferror(d->file);
  fclose(d->file);
  d->file = NULL;
  const char *problem = NULL;
  char statusbuf[64];
  if (!http_request_ok(req)) {
    problem = http_request_error(req);
  } else if (http_request_status(req) != 200) {
    snprintf(statusbuf, sizeof statusbuf, "HTTP %ld%s",
             http_request_status(req),
             http_request_status(req) == 404 ? " (no such file)" : "");
    problem = statusbuf;
  } else if (!flushed) {
    problem = "cannot write the file";
  } else if (rename(d->tmp_path, d->dest) != 0) {
    problem = strerror(errno);
  }
  lua_pushboolean(co, 1);
  if (problem) {
    lua_pushnil(co);
    lua_pushfstring(co, "download failed: %s", problem);
    download_free(d, false);
    return 3;
  }
  lua_pushstring(co, d->dest);
  lua_pushinteger(co, (lua_Integer)size);
  download_free(d, true);
  return 3;
}

static void download_done(struct http_request *req, void *ud) {
  struct download *d = ud;
  task_wake(d->task, download_push, d);
}

static void download_cancel(void *data) { download_free(data, false); }

static const struct task_wait_ops download_wait = {"download",
                                                   download_cancel};

/* api.download(file_path, dest) -> dest, size | nil, err. Streams the file
 * to dest.part and renames it when complete. */
static int l_download(lua_State *L) {
  struct script_env *env = env_of(L);
  const char *file_path = luaL_checkstring(L, 1);
  const char *dest = luaL_checkstring(L, 2);
  luaL_argcheck(L, *dest, 2, "the destination path is empty");
  luabind_check_network(L, "tghost.download");
  struct task *t = task_check_can_wait(L, env->sched, "tghost.download");
  struct buf err = BUF_INIT;
  struct http_request *req = botapi_file_request(env->api, file_path, &err);
  if (!req) {
    lua_pushfstring(L, "tghost.download: %s", err.data);
    buf_free(&err);
    return lua_error(L);
  }
  struct download *d = xcalloc(1, sizeof *d);
  d->task = t;
  d->req = req;
  d->dest = xstrdup(dest);
  struct buf tmp = BUF_INIT;
  buf_printf(&tmp, "%s.part", dest);
  d->tmp_path = buf_steal(&tmp, NULL);
  d->file = fopen(d->tmp_path, "wb");
  if (!d->file) {
    lua_pushnil(L);
    lua_pushfstring(L, "download failed: cannot write %s: %s", d->tmp_path,
                    strerror(errno));
    d->req = NULL;
    http_request_free(req);
    free(d->tmp_path);
    free(d->dest);
    free(d);
    return 2;
  }
  http_request_set_sink_file(req, d->file);
  http_request_set_timeout(req, 0);
  http_request_set_low_speed(req, TRANSFER_LOW_SPEED_BYTES,
                             TRANSFER_LOW_SPEED_SECS);
  if (http_request_start(req, download_done, d) != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "download failed: %s", http_request_error(req));
    download_free(d, false);
    return 2;
  }
  lua_settop(L, 0);
  return task_wait(L, t, &download_wait, d);
}

/* --- the Bot API's methods (net/botapi_methods.h) ------------------------ */

/* api.method(name) -> name as the Bot API spells it, result type, the
 * parameters ("chat_id! text! ..."), grammY's positional arguments where
 * they are not the required ones ("chat_id message_id text", else nil),
 * or nothing: Telegram has no such method. */
static int l_method(lua_State *L) {
  const struct botapi_method *m = botapi_method_find(luaL_checkstring(L, 1));
  if (!m) return 0;
  lua_pushstring(L, m->name);
  lua_pushstring(L, m->result);
  lua_pushstring(L, m->params);
  if (m->positional) lua_pushstring(L, m->positional);
  else lua_pushnil(L);
  return 4;
}

/* api.methods() -> every method name, in case-insensitive order. */
static int l_methods(lua_State *L) {
  size_t n = botapi_method_count();
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_pushstring(L, botapi_method_at(i)->name);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

int luaopen_tghost_api(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"call", l_call},
      {"config", l_config},
      {"download", l_download},
      {"method", l_method},
      {"methods", l_methods},
      {NULL, NULL}};
  luaL_newlib(L, fns);
  lua_pushstring(L, botapi_version);
  lua_setfield(L, -2, "version");
  return 1;
}
