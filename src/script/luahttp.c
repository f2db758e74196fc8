#include "script/luahttp.h"

#include <ctype.h>
#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "script/luabind.h"
#include "script/luajson.h"
#include "sched/task.h"

#define DEFAULT_TIMEOUT_S 30.0
#define DEFAULT_MAX_BODY (16u << 20)

struct http_wait {
  struct task *task;
  struct http_request *req;
  long timeout_ms;
  size_t max_body;
};

static void append_escaped(struct buf *out, const char *s, size_t len) {
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      buf_append_char(out, (char)c);
    } else {
      buf_append_char(out, '%');
      buf_append_char(out, hex[c >> 4]);
      buf_append_char(out, hex[c & 15]);
    }
  }
}

/* Appends one query value (string, number or boolean) escaped; false for
 * other types. */
static bool append_query_value(lua_State *L, int idx, struct buf *out) {
  switch (lua_type(L, idx)) {
    case LUA_TSTRING:
    case LUA_TNUMBER: {
      size_t len;
      lua_pushvalue(L, idx);   /* lua_tolstring converts numbers in place */
      const char *s = lua_tolstring(L, -1, &len);
      append_escaped(out, s, len);
      lua_pop(L, 1);
      return true;
    }
    case LUA_TBOOLEAN:
      buf_append_str(out, lua_toboolean(L, idx) ? "true" : "false");
      return true;
    default:
      return false;
  }
}

static int sort_keys(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* url .. ?k=v&k=v2 from the query table at idx (keys sorted; a list value
 * repeats its key). Raises on values that have no text form. */
static void build_url(lua_State *L, const char *url, int idx, struct buf *out) {
  buf_append_str(out, url);
  if (lua_isnoneornil(L, idx)) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  size_t n = 0, cap = 8;
  char **keys = xmalloc(cap * sizeof *keys);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING) {
      for (size_t i = 0; i < n; i++) free(keys[i]);
      free(keys);
      luaL_error(L, "tghost.http: query keys must be strings");
    }
    if (n == cap) keys = xrealloc(keys, (cap *= 2) * sizeof *keys);
    keys[n++] = xstrdup(lua_tostring(L, -2));
    lua_pop(L, 1);
  }
  qsort(keys, n, sizeof *keys, sort_keys);
  char sep = strchr(url, '?') ? '&' : '?';
  const char *bad = NULL;
  for (size_t i = 0; i < n && !bad; i++) {
    lua_getfield(L, idx, keys[i]);
    int count = lua_istable(L, -1) ? (int)lua_rawlen(L, -1) : 1;
    for (int j = 1; j <= count && !bad; j++) {
      if (lua_istable(L, -1)) lua_rawgeti(L, -1, j);
      else lua_pushvalue(L, -1);
      buf_append_char(out, sep);
      sep = '&';
      append_escaped(out, keys[i], strlen(keys[i]));
      buf_append_char(out, '=');
      if (!append_query_value(L, -1, out)) bad = keys[i];
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  if (bad) lua_pushfstring(L, "tghost.http: query value %s must be a string, "
                              "number or boolean", bad);
  for (size_t i = 0; i < n; i++) free(keys[i]);
  free(keys);
  if (bad) lua_error(L);
}

/* Raw header lines -> {lowercase-name = value}; repeats joined by ", ". */
void luahttp_push_headers(lua_State *L, const struct buf *raw) {
  lua_newtable(L);
  const char *p = raw->data ? raw->data : "";
  const char *end = p + raw->len;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) eol = end;
    const char *colon = memchr(p, ':', (size_t)(eol - p));
    if (colon && colon > p) {
      luaL_Buffer name;
      luaL_buffinit(L, &name);
      for (const char *q = p; q < colon; q++)
        luaL_addchar(&name, (char)tolower((unsigned char)*q));
      luaL_pushresult(&name);
      const char *v = colon + 1, *ve = eol;
      while (v < ve && (*v == ' ' || *v == '\t')) v++;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ')) ve--;
      lua_pushvalue(L, -1);
      if (lua_rawget(L, -3) == LUA_TSTRING) {
        lua_pushliteral(L, ", ");
        lua_pushlstring(L, v, (size_t)(ve - v));
        lua_concat(L, 3);
      } else {
        lua_pop(L, 1);
        lua_pushlstring(L, v, (size_t)(ve - v));
      }
      lua_rawset(L, -3);
    }
    p = eol + 1;
  }
}

static int http_push(lua_State *co, void *data) {
  struct http_wait *w = data;
  int n = 0;
  if (co) {
    struct http_request *req = w->req;
    luaL_checkstack(co, 6, "HTTP response");
    lua_pushboolean(co, 1);
    if (!http_request_ok(req)) {
      lua_pushnil(co);
      char *msg;
      if (http_request_too_large(req)) {
        msg = xmalloc(96);
        snprintf(msg, 96, "response body larger than max_body (%zu bytes)",
                 w->max_body);
      } else if (http_request_timed_out(req)) {
        msg = xmalloc(64);
        snprintf(msg, 64, "timed out after %.3g s", w->timeout_ms / 1000.0);
      } else {
        msg = xstrdup(http_request_error(req));
      }
      lua_pushstring(co, msg);
      free(msg);
      n = 3;
    } else {
      lua_createtable(co, 0, 3);
      lua_pushinteger(co, (lua_Integer)http_request_status(req));
      lua_setfield(co, -2, "status");
      luahttp_push_headers(co, http_request_headers(req));
      lua_setfield(co, -2, "headers");
      const struct buf *body = http_request_body(req);
      lua_pushlstring(co, body->data ? body->data : "", body->len);
      lua_setfield(co, -2, "body");
      n = 2;
    }
  }
  http_request_free(w->req);
  free(w);
  return n;
}

static void http_done(struct http_request *req, void *ud) {
  struct http_wait *w = ud;
  task_wake(w->task, http_push, w);
}

static void http_cancel(void *data) {
  struct http_wait *w = data;
  http_request_free(w->req);
  free(w);
}

static const struct task_wait_ops http_wait_ops = {"tghost.http",
                                                   http_cancel};

static bool valid_token(const char *s) {
  if (!*s) return false;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
      return false;
  return true;
}

static bool has_header(lua_State *L, int headers, const char *name) {
  if (!lua_istable(L, headers)) return false;
  bool found = false;
  lua_pushnil(L);
  while (lua_next(L, headers)) {
    if (lua_type(L, -2) == LUA_TSTRING &&
        strcasecmp(lua_tostring(L, -2), name) == 0)
      found = true;
    lua_pop(L, 1);
  }
  return found;
}

/* Reads url, method, headers, query and body from the options table at
 * index 1 and returns the request they describe (not started); raises on
 * misuse, naming `what`. Options other than these and those in `extra`
 * raise too. A body that is a function or an InputFile is left to the
 * caller when stream_body is set (luastream.c sends those). */
struct http_request *luahttp_new_request(lua_State *L,
                                         struct http_client *client,
                                         const char *what,
                                         const char *const *extra,
                                         bool stream_body) {
  luaL_checktype(L, 1, LUA_TTABLE);
  static const char *const base_keys[] = {"method", "url", "headers", "body",
                                          "query", NULL};
  const char *known[24];
  size_t nk = 0;
  for (size_t i = 0; base_keys[i]; i++) known[nk++] = base_keys[i];
  for (size_t i = 0; extra && extra[i] && nk < 23; i++) known[nk++] = extra[i];
  known[nk] = NULL;
  luabind_check_keys(L, 1, what, "", known);
  int top = lua_gettop(L);
  lua_getfield(L, 1, "url");            /* top + 1 */
  lua_getfield(L, 1, "method");         /* top + 2 */
  lua_getfield(L, 1, "headers");        /* top + 3 */
  lua_getfield(L, 1, "body");           /* top + 4 */
  lua_getfield(L, 1, "query");          /* top + 5 */
  int iurl = top + 1, imethod = top + 2, iheaders = top + 3, ibody = top + 4,
      iquery = top + 5;
  const char *url = lua_tostring(L, iurl);
  if (lua_type(L, iurl) != LUA_TSTRING)
    luaL_error(L, "%s: url must be a string", what);
  if (strncasecmp(url, "http://", 7) != 0 &&
      strncasecmp(url, "https://", 8) != 0)
    luaL_error(L, "%s: url must start with http:// or https://", what);
  const char *method = "GET";
  if (!lua_isnil(L, imethod)) {
    if (lua_type(L, imethod) != LUA_TSTRING ||
        !valid_token(lua_tostring(L, imethod)))
      luaL_error(L, "%s: method must be an HTTP method name", what);
    method = lua_tostring(L, imethod);
  }
  if (!lua_isnil(L, iheaders) && !lua_istable(L, iheaders))
    luaL_error(L, "%s: headers must be a table", what);
  int btype = lua_type(L, ibody);
  bool streamed = stream_body && (btype == LUA_TFUNCTION ||
                                  btype == LUA_TUSERDATA);
  if (btype != LUA_TNIL && btype != LUA_TSTRING && btype != LUA_TTABLE &&
      !streamed)
    luaL_error(L, "%s: body must be a string or a table (sent as JSON)%s",
               what, stream_body ? ", a function (called for each piece) or "
                                   "an InputFile" : "");

  struct buf full = BUF_INIT;
  build_url(L, url, iquery, &full);
  struct http_request *req = http_request_new(client, full.data);
  buf_free(&full);
  http_request_set_method(req, method);
  if (lua_istable(L, iheaders)) {
    lua_pushnil(L);
    while (lua_next(L, iheaders)) {
      if (lua_type(L, -2) != LUA_TSTRING || !valid_token(lua_tostring(L, -2)) ||
          (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)) {
        http_request_free(req);
        luaL_error(L, "%s: headers must map names to strings", what);
      }
      size_t vlen;
      const char *v = lua_tolstring(L, -1, &vlen);
      if (memchr(v, '\r', vlen) || memchr(v, '\n', vlen)) {
        http_request_free(req);
        luaL_error(L, "%s: header %s contains a line break", what,
                   lua_tostring(L, -2));
      }
      struct buf line = BUF_INIT;
      buf_printf(&line, "%s: %s", lua_tostring(L, -2), v);
      http_request_add_header(req, line.data);
      buf_free(&line);
      lua_pop(L, 1);
    }
  }
  if (btype == LUA_TSTRING) {
    size_t len;
    const char *b = lua_tolstring(L, ibody, &len);
    char *copy = xmalloc(len + 1);
    memcpy(copy, b, len);
    copy[len] = '\0';
    http_request_set_body(req, copy, len);
  } else if (btype == LUA_TTABLE) {
    struct buf json = BUF_INIT, err = BUF_INIT;
    if (luajson_encode(L, ibody, &json, &err) != 0) {
      http_request_free(req);
      lua_pushfstring(L, "%s: cannot encode the body: %s", what, err.data);
      buf_free(&json);
      buf_free(&err);
      lua_error(L);
    }
    buf_free(&err);
    if (!has_header(L, iheaders, "Content-Type"))
      http_request_add_header(req, "Content-Type: application/json");
    size_t len;
    char *b = buf_steal(&json, &len);
    http_request_set_body(req, b, len);
  } else if (streamed && !has_header(L, iheaders, "Content-Type")) {
    /* A file or a function's pieces are bytes; curl would label them a
     * urlencoded form, which servers try to parse. */
    http_request_add_header(req, "Content-Type: application/octet-stream");
  }
  lua_settop(L, top);
  return req;
}

/* httpcore.request{method, url, headers, body, query, timeout, max_body}
 * -> {status, headers, body} | nil, err */
static int l_request(lua_State *L) {
  struct script_env *env = env_of(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  static const char *const extra[] = {"timeout", "max_body", NULL};
  lua_getfield(L, 1, "timeout");        /* 2 */
  lua_getfield(L, 1, "max_body");       /* 3 */
  double timeout = DEFAULT_TIMEOUT_S;
  if (!lua_isnil(L, 2)) {
    if (!lua_isnumber(L, 2) || !(lua_tonumber(L, 2) > 0) ||
        lua_tonumber(L, 2) > 86400)
      return luaL_error(L, "tghost.http.request: timeout must be a number of "
                           "seconds (0 < timeout <= 86400)");
    timeout = lua_tonumber(L, 2);
  }
  size_t max_body = DEFAULT_MAX_BODY;
  if (!lua_isnil(L, 3)) {
    if (!lua_isinteger(L, 3) || lua_tointeger(L, 3) < 0)
      return luaL_error(L, "tghost.http.request: max_body must be a "
                           "non-negative integer (bytes)");
    max_body = (size_t)lua_tointeger(L, 3);
  }
  lua_settop(L, 1);
  luabind_check_network(L, "tghost.http.request");
  struct task *t = task_check_can_wait(L, env->sched, "tghost.http.request");
  struct http_request *req = luahttp_new_request(L, env->http,
                                                 "tghost.http.request", extra,
                                                 false);
  long timeout_ms = (long)ceil(timeout * 1000);
  http_request_set_timeout(req, timeout_ms);
  http_request_set_max_response(req, max_body);
  http_request_set_compressed(req, true);
  http_request_keep_headers(req, true);

  struct http_wait *w = xcalloc(1, sizeof *w);
  w->task = t;
  w->req = req;
  w->timeout_ms = timeout_ms;
  w->max_body = max_body;
  if (http_request_start(req, http_done, w) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, http_request_error(req));
    http_request_free(req);
    free(w);
    return 2;
  }
  lua_settop(L, 0);
  return task_wait(L, t, &http_wait_ops, w);
}

/* Replaces the stack with a copy of the options table at opts (if any)
 * plus url, method and body, then runs the request. In C so that misuse
 * errors name the script's line, not a wrapper's. */
static int request_with(lua_State *L, const char *what, int opts,
                        const char *method, int body) {
  lua_settop(L, opts);
  if (!lua_isnoneornil(L, opts) && !lua_istable(L, opts))
    return luaL_error(L, "%s: options must be a table", what);
  lua_newtable(L);
  int t = lua_gettop(L);
  if (lua_istable(L, opts)) {
    lua_pushnil(L);
    while (lua_next(L, opts)) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, t);
    }
  }
  lua_pushvalue(L, 1);
  lua_setfield(L, t, "url");
  lua_pushstring(L, method);
  lua_setfield(L, t, "method");
  if (body) {
    lua_pushvalue(L, body);
    lua_setfield(L, t, "body");
  }
  lua_replace(L, 1);
  lua_settop(L, 1);
  return l_request(L);
}

/* httpcore.get(url, opts), httpcore.post(url, body, opts) */
static int l_get(lua_State *L) {
  return request_with(L, "tghost.http.get", 2, "GET", 0);
}

static int l_post(lua_State *L) {
  return request_with(L, "tghost.http.post", 3, "POST", 2);
}

int luaopen_tghost_httpcore(lua_State *L) {
  static const luaL_Reg fns[] = {{"request", l_request},
                                 {"get", l_get},
                                 {"post", l_post},
                                 {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
