#include "luaapi.h"

#include <errno.h>
#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apicall.h"
#include "botapi.h"
#include "generation.h"
#include "host.h"
#include "log.h"
#include "luajson.h"
#include "task.h"

#define INPUT_FILE_MT "tghost.InputFile"
#define SCAN_MAX_DEPTH 16
/* Large transfers have no total timeout; they fail when they stall. */
#define TRANSFER_LOW_SPEED_BYTES 1024L
#define TRANSFER_LOW_SPEED_SECS 60L

static struct host *host_of(lua_State *L) { return gen_of(L)->host; }

/* Pushes runtime[name] of L's generation (nil if absent). */
static void push_runtime_field(lua_State *L, const char *name) {
  struct generation *g = gen_of(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, g->runtime_ref);
  if (lua_istable(L, -1)) lua_getfield(L, -1, name);
  else lua_pushnil(L);
  lua_remove(L, -2);
}

static struct log_fields running_fields(lua_State *L) {
  struct task *t = sched_running(&host_of(L)->sched);
  if (t) return job_log_fields(task_job(t));
  struct log_fields f = {gen_of(L)->id, -1};
  return f;
}

/* --- InputFile ----------------------------------------------------------- */

/* A file to upload: a path on disk (streamed when sent) or bytes in
 * memory (the Lua string, kept as the userdata's user value). */
struct input_file {
  char *path;
  char *filename;
  char *content_type;
};

static int input_file_gc(lua_State *L) {
  struct input_file *f = luaL_checkudata(L, 1, INPUT_FILE_MT);
  free(f->path);
  free(f->filename);
  free(f->content_type);
  f->path = f->filename = f->content_type = NULL;
  return 0;
}

static int input_file_index(lua_State *L) {
  struct input_file *f = luaL_checkudata(L, 1, INPUT_FILE_MT);
  const char *key = luaL_checkstring(L, 2);
  if (strcmp(key, "path") == 0) lua_pushstring(L, f->path);
  else if (strcmp(key, "filename") == 0) lua_pushstring(L, f->filename);
  else if (strcmp(key, "content_type") == 0) lua_pushstring(L, f->content_type);
  else if (strcmp(key, "data") == 0) lua_getiuservalue(L, 1, 1);
  else lua_pushnil(L);
  return 1;
}

static int input_file_tostring(lua_State *L) {
  struct input_file *f = luaL_checkudata(L, 1, INPUT_FILE_MT);
  if (f->path) lua_pushfstring(L, "InputFile(%s)", f->path);
  else lua_pushfstring(L, "InputFile(%s, in memory)",
                       f->filename ? f->filename : "file");
  return 1;
}

static char *opt_field(lua_State *L, int t, const char *name) {
  char *v = NULL;
  int type = lua_getfield(L, t, name);
  if (type != LUA_TNIL) {
    if (type != LUA_TSTRING)
      luaL_error(L, "tghost.InputFile: %s must be a string", name);
    v = xstrdup(lua_tostring(L, -1));
  }
  lua_pop(L, 1);
  return v;
}

/* InputFile(path [, filename]) or InputFile{path=|data=, filename=,
 * content_type=}. */
static int l_input_file(lua_State *L) {
  char *path = NULL, *filename = NULL, *ctype = NULL;
  bool has_data = false;
  if (lua_type(L, 1) == LUA_TSTRING) {
    path = xstrdup(lua_tostring(L, 1));
    if (!lua_isnoneornil(L, 2)) filename = xstrdup(luaL_checkstring(L, 2));
  } else if (lua_type(L, 1) == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, 1)) {
      const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
      if (strcmp(k, "path") && strcmp(k, "data") && strcmp(k, "filename") &&
          strcmp(k, "content_type"))
        return luaL_error(L, "tghost.InputFile: unknown field %s (expected "
                             "path or data, filename, content_type)",
                          luaL_tolstring(L, -2, NULL));
      lua_pop(L, 1);
    }
    int dt = lua_getfield(L, 1, "data");
    if (dt != LUA_TNIL && dt != LUA_TSTRING)
      return luaL_error(L, "tghost.InputFile: data must be a string");
    has_data = dt == LUA_TSTRING;
    lua_pop(L, 1);
    path = opt_field(L, 1, "path");
    filename = opt_field(L, 1, "filename");
    ctype = opt_field(L, 1, "content_type");
    if (has_data == (path != NULL)) {
      free(path);
      free(filename);
      free(ctype);
      return luaL_error(L, "tghost.InputFile: give either path or data");
    }
  } else {
    return luaL_argerror(L, 1, "expected a path or a table {data=, filename=}");
  }
  if (path && !*path) {
    free(path);
    free(filename);
    free(ctype);
    return luaL_argerror(L, 1, "the path is empty");
  }
  struct input_file *f = lua_newuserdatauv(L, sizeof *f, 1);
  f->path = path;
  f->filename = filename;
  f->content_type = ctype;
  luaL_setmetatable(L, INPUT_FILE_MT);
  if (has_data) {
    lua_getfield(L, 1, "data");
    lua_setiuservalue(L, -2, 1);
  }
  return 1;
}

static int l_is_input_file(lua_State *L) {
  lua_pushboolean(L, luaL_testudata(L, 1, INPUT_FILE_MT) != NULL);
  return 1;
}

/* --- multipart/form-data ------------------------------------------------- */

struct multipart {
  lua_State *L;
  curl_mime *mime;
  int nattach;
  struct buf *err;
};

static bool has_file(lua_State *L, int idx, int depth) {
  if (luaL_testudata(L, idx, INPUT_FILE_MT)) return true;
  if (!lua_istable(L, idx) || depth >= SCAN_MAX_DEPTH) return false;
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (has_file(L, -1, depth + 1)) {
      lua_pop(L, 2);
      return true;
    }
    lua_pop(L, 1);
  }
  return false;
}

/* Adds the InputFile at idx as a part called name. */
static int add_file_part(struct multipart *m, int idx, const char *name) {
  lua_State *L = m->L;
  struct input_file *f = luaL_testudata(L, idx, INPUT_FILE_MT);
  curl_mimepart *part = curl_mime_addpart(m->mime);
  if (!part) {
    buf_append_str(m->err, "out of memory");
    return -1;
  }
  curl_mime_name(part, name);
  if (f->path) {
    struct stat st;
    if (stat(f->path, &st) != 0 || access(f->path, R_OK) != 0) {
      buf_printf(m->err, "cannot read %s: %s", f->path, strerror(errno));
      return -1;
    }
    if (!S_ISREG(st.st_mode)) {
      buf_printf(m->err, "cannot upload %s: not a regular file", f->path);
      return -1;
    }
    /* curl reads the file while it sends, a buffer at a time. */
    CURLcode rc = curl_mime_filedata(part, f->path);
    if (rc != CURLE_OK) {
      buf_printf(m->err, "cannot read %s: %s", f->path, curl_easy_strerror(rc));
      return -1;
    }
    if (f->filename) curl_mime_filename(part, f->filename);
  } else {
    lua_getiuservalue(L, idx, 1);
    size_t len;
    const char *data = lua_tolstring(L, -1, &len);
    curl_mime_data(part, data ? data : "", data ? len : 0);   /* copies */
    lua_pop(L, 1);
    curl_mime_filename(part, f->filename ? f->filename : "file");
  }
  if (f->content_type) curl_mime_type(part, f->content_type);
  return 0;
}

/* Pushes the value at idx with every InputFile inside replaced by
 * "attach://name" (its part added): tables that hold files are copied,
 * keeping their JSON shape marks; the caller's tables are not changed. */
static int push_replaced(struct multipart *m, int idx, int depth) {
  lua_State *L = m->L;
  idx = lua_absindex(L, idx);
  luaL_checkstack(L, 6, "multipart parameters");
  if (luaL_testudata(L, idx, INPUT_FILE_MT)) {
    char name[48];
    snprintf(name, sizeof name, "tghost_file_%d", m->nattach++);
    if (add_file_part(m, idx, name) != 0) return -1;
    lua_pushfstring(L, "attach://%s", name);
    return 0;
  }
  if (!lua_istable(L, idx) || !has_file(L, idx, depth)) {
    lua_pushvalue(L, idx);
    return 0;
  }
  lua_newtable(L);
  if (lua_getmetatable(L, idx)) lua_setmetatable(L, -2);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pushvalue(L, -2);
    if (push_replaced(m, -2, depth + 1) != 0) {
      lua_pop(L, 4);
      return -1;
    }
    lua_rawset(L, -5);
    lua_pop(L, 1);
  }
  return 0;
}

static int add_text_part(struct multipart *m, const char *name,
                         const char *data, size_t len) {
  curl_mimepart *part = curl_mime_addpart(m->mime);
  if (!part) {
    buf_append_str(m->err, "out of memory");
    return -1;
  }
  curl_mime_name(part, name);
  curl_mime_data(part, data, len);
  return 0;
}

/* Fills mime from the params table at idx: scalars as text fields, tables
 * as JSON, files at the top level as parts of their own name (thumbnails
 * through attach://, as the Bot API wants), nested files as attach://. */
static int build_multipart(lua_State *L, int idx, curl_mime *mime,
                           struct buf *err) {
  struct multipart m = {L, mime, 0, err};
  int top = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING) {
      buf_append_str(err, "parameter names must be strings");
      lua_settop(L, top);
      return -1;
    }
    const char *key = lua_tostring(L, -2);
    int rc = 0;
    bool attach = strcmp(key, "thumbnail") == 0 || strcmp(key, "thumb") == 0;
    if (luaL_testudata(L, -1, INPUT_FILE_MT) && !attach) {
      rc = add_file_part(&m, -1, key);
    } else if (lua_type(L, -1) == LUA_TSTRING) {
      size_t len;
      const char *s = lua_tolstring(L, -1, &len);
      rc = add_text_part(&m, key, s, len);
    } else {
      if (push_replaced(&m, -1, 0) != 0) {
        lua_settop(L, top);
        return -1;
      }
      struct buf json = BUF_INIT, jerr = BUF_INIT;
      if (lua_type(L, -1) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        buf_append(&json, s, len);
      } else if (luajson_encode(L, -1, &json, &jerr) != 0) {
        buf_printf(err, "%s: %s", key, jerr.data);
        rc = -1;
      }
      lua_pop(L, 1);
      if (rc == 0) rc = add_text_part(&m, key, json.data ? json.data : "",
                                      json.len);
      buf_free(&json);
      buf_free(&jerr);
    }
    if (rc != 0) {
      lua_settop(L, top);
      return -1;
    }
    lua_pop(L, 1);
  }
  return 0;
}

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
  push_runtime_field(L, "ApiError");
  if (lua_istable(L, -1)) lua_setmetatable(L, -2);
  else lua_pop(L, 1);
}

static int api_call_push(lua_State *co, void *data) {
  struct api_call *c = data;
  int n = 0;
  if (co) {
    struct botapi_reply reply;
    luaL_checkstack(co, 8, "Bot API result");
    if (c->start_error) {
      memset(&reply, 0, sizeof reply);
      reply.outcome = BOTAPI_NETWORK_ERROR;
      buf_append_str(&reply.description, c->start_error);
    } else {
      botapi_parse_reply(c->req, &reply);
    }
    if (reply.outcome == BOTAPI_OK) {
      struct json_reader r;
      struct buf scratch = BUF_INIT;
      json_reader_init(&r, reply.result.ptr, reply.result.len);
      lua_pushboolean(co, 1);
      if (luajson_decode_value(co, &r, &scratch)) {
        n = 2;
      } else {
        lua_pop(co, 1);
        reply.outcome = BOTAPI_BAD_RESPONSE;
        buf_reset(&reply.description);
        buf_printf(&reply.description,
                   "bad response: result is invalid JSON: %s", json_error(&r));
      }
      buf_free(&scratch);
    }
    if (n == 0) {
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

/* api.call(method, params) -> result, or raises an ApiError. */
static int l_call(lua_State *L) {
  struct host *h = host_of(L);
  const char *method = luaL_checkstring(L, 1);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  char what[96];
  snprintf(what, sizeof what, "bot.api.%s", method);
  if (h->cfg->check)
    return luaL_error(L, "%s: network calls are disabled by --check", what);
  struct task *t = task_check_can_wait(L, &h->sched, what);

  struct buf err = BUF_INIT;
  struct http_request *req;
  bool upload = lua_istable(L, 2) && has_file(L, 2, 0);
  if (upload) {
    req = botapi_request(h->api, method, &err);
    if (!req) return raise_msg(L, what, "%s: %s", &err, NULL);
    curl_mime *mime = http_request_new_mime(req);
    if (!mime || build_multipart(L, 2, mime, &err) != 0) {
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
    req = botapi_request_json(h->api, method, json, len, &err);
    if (!req) return raise_msg(L, what, "%s: %s", &err, NULL);
  }

  char chat[80];
  struct apicall_params p = {method, NULL, false, running_fields(L)};
  chat_of(L, 2, chat, sizeof chat, &p.is_group);
  if (chat[0]) p.chat_key = chat;
  struct api_call *c = xcalloc(1, sizeof *c);
  c->task = t;
  snprintf(c->method, sizeof c->method, "%s", method);
  c->call = apicall_start(h->calls, &p, req, api_call_done, c, &err);
  if (!c->call) {
    free(c);
    return raise_msg(L, what, "%s: %s", &err, NULL);
  }
  return task_wait(L, t, &api_call_wait, c);
}

/* --- configuration ------------------------------------------------------- */

static void check_keys(lua_State *L, int t, const char *where,
                       const char *const *known) {
  lua_pushnil(L);
  while (lua_next(L, t)) {
    bool ok = false;
    if (lua_type(L, -2) == LUA_TSTRING)
      for (int i = 0; known[i]; i++)
        if (strcmp(lua_tostring(L, -2), known[i]) == 0) ok = true;
    if (!ok) {
      struct buf names = BUF_INIT;
      for (int i = 0; known[i]; i++)
        buf_printf(&names, "%s%s", i ? ", " : "", known[i]);
      lua_pushfstring(L, "bot.api.config: unknown option %s%s (known: %s)",
                      where, luaL_tolstring(L, -2, NULL), names.data);
      buf_free(&names);
      lua_error(L);
    }
    lua_pop(L, 1);
  }
}

static double num_field(lua_State *L, int t, const char *name, double def,
                        double min, double max) {
  double v = def;
  int type = lua_getfield(L, t, name);
  if (type != LUA_TNIL) {
    if (type != LUA_TNUMBER)
      luaL_error(L, "bot.api.config: %s must be a number", name);
    v = lua_tonumber(L, -1);
    if (isnan(v) || v < min || v > max)
      luaL_error(L, "bot.api.config: %s must be between %g and %g", name, min,
                 max);
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
  struct host *h = host_of(L);
  struct apicall_config c = *apicalls_config(h->calls);
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    static const char *const top[] = {"autoRetry", "throttle", NULL};
    check_keys(L, 1, "", top);
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
      check_keys(L, i, "autoRetry.", keys);
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
      check_keys(L, i, "throttle.", keys);
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
    apicalls_configure(h->calls, &c);
  }
  push_config(L, apicalls_config(h->calls));
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
  struct host *h = host_of(L);
  const char *file_path = luaL_checkstring(L, 1);
  const char *dest = luaL_checkstring(L, 2);
  luaL_argcheck(L, *dest, 2, "the destination path is empty");
  if (h->cfg->check)
    return luaL_error(L, "tghost.download: network calls are disabled by "
                         "--check");
  struct task *t = task_check_can_wait(L, &h->sched, "tghost.download");
  struct buf err = BUF_INIT;
  struct http_request *req = botapi_file_request(h->api, file_path, &err);
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

int luaopen_tghost_api(lua_State *L) {
  if (luaL_newmetatable(L, INPUT_FILE_MT)) {
    lua_pushcfunction(L, input_file_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, input_file_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, input_file_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushstring(L, "tghost.InputFile");
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {
      {"call", l_call},
      {"config", l_config},
      {"InputFile", l_input_file},
      {"is_input_file", l_is_input_file},
      {"download", l_download},
      {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
