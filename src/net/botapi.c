#include "net/botapi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hashmap.h"
#include "base/log.h"

/* Method URLs parsed once (a bot calls a handful of methods over and over);
 * names past this many are parsed per call, so a script inventing method
 * names cannot grow the table without bound. */
#define MAX_PARSED_METHODS 256

struct method_url {
  struct hashmap_node node;
  struct http_url *url;
  char name[];
};

struct botapi {
  struct http_client *http;
  char *api_root;
  char *token;
  long call_timeout_ms;
  size_t max_response;
  struct hashmap method_urls;          /* of struct method_url */
  struct curl_slist *json_headers;     /* every JSON call's, built once */
};

struct botapi *botapi_new(struct http_client *http,
                          const struct botapi_config *cfg) {
  struct botapi *api = xcalloc(1, sizeof *api);
  api->http = http;
  api->api_root = xstrdup(cfg->api_root);
  size_t n = strlen(api->api_root);
  while (n > 0 && api->api_root[n - 1] == '/') api->api_root[--n] = '\0';
  api->token = cfg->token && *cfg->token ? xstrdup(cfg->token) : NULL;
  api->call_timeout_ms = cfg->call_timeout_ms > 0 ? cfg->call_timeout_ms : 60000;
  api->max_response = cfg->max_response ? cfg->max_response : (64u << 20);
  hashmap_init(&api->method_urls, keyhash_random_seed());
  /* Two lines only: curl looks a header up in this list a dozen times
   * per request (its own User-Agent and Accept lines cost less than the
   * longer list, measured). */
  static const char *const json_headers[] = {
      "Content-Type: application/json", "Expect:", NULL};
  for (int i = 0; json_headers[i]; i++) {
    struct curl_slist *l = curl_slist_append(api->json_headers, json_headers[i]);
    if (!l) {
      fprintf(stderr, "tghost: out of memory\n");
      abort();
    }
    api->json_headers = l;
  }
  return api;
}

void botapi_free(struct botapi *api) {
  if (!api) return;
  size_t i;
  struct hashmap_node *n = hashmap_first(&api->method_urls, &i);
  while (n) {
    struct hashmap_node *next = hashmap_next(&api->method_urls, n, &i);
    struct method_url *m = hashmap_entry(n, struct method_url, node);
    http_url_free(m->url);
    free(m);
    n = next;
  }
  hashmap_free(&api->method_urls);
  curl_slist_free_all(api->json_headers);
  free(api->api_root);
  if (api->token) {
    memset(api->token, 0, strlen(api->token));
    free(api->token);
  }
  free(api);
}

bool botapi_has_token(const struct botapi *api) { return api->token != NULL; }
const char *botapi_api_root(const struct botapi *api) { return api->api_root; }

bool botapi_valid_method(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > 64) return false;
  for (const char *p = name; *p; p++) {
    char c = *p;
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_'))
      return false;
  }
  return true;
}

static bool check_token(struct botapi *api, struct buf *err) {
  if (api->token) return true;
  buf_append_str(err,
                 "no bot token: set BOT_TOKEN in the environment or pass "
                 "--token-file FILE");
  return false;
}

/* The method's parsed URL, made on its first call; NULL when the table
 * is full or curl refuses the URL (then the text is used). */
static const struct http_url *method_url(struct botapi *api,
                                         const char *method) {
  size_t len = strlen(method);
  struct hashmap_key k = hashmap_key(&api->method_urls, 0, method, len);
  struct hashmap_node *n = hashmap_find(&api->method_urls, &k);
  if (n) return hashmap_entry(n, struct method_url, node)->url;
  if (hashmap_count(&api->method_urls) >= MAX_PARSED_METHODS) return NULL;
  struct buf text = BUF_INIT;
  buf_printf(&text, "%s/bot%s/%s", api->api_root, api->token, method);
  struct http_url *url = http_url_new(text.data);
  memset(text.data, 0, text.len);
  buf_free(&text);
  if (!url) return NULL;
  struct method_url *m = xmalloc(sizeof *m + len + 1);
  memcpy(m->name, method, len + 1);
  m->url = url;
  hashmap_insert(&api->method_urls, &m->node, &k, m->name);
  return url;
}

static struct http_request *method_request(struct botapi *api,
                                           const char *method) {
  const struct http_url *parsed = method_url(api, method);
  if (parsed) return http_request_new_parsed(api->http, parsed);
  struct buf url = BUF_INIT;
  buf_printf(&url, "%s/bot%s/%s", api->api_root, api->token, method);
  struct http_request *req = http_request_new(api->http, url.data);
  memset(url.data, 0, url.len);
  buf_free(&url);
  return req;
}

struct http_request *botapi_request(struct botapi *api, const char *method,
                                    struct buf *err) {
  if (!check_token(api, err)) return NULL;
  if (!botapi_valid_method(method)) {
    buf_printf(err, "invalid Bot API method name '%s'", method);
    return NULL;
  }
  struct http_request *req = method_request(api, method);
  http_request_set_timeout(req, api->call_timeout_ms);
  http_request_set_max_response(req, api->max_response);
  /* Method replies are small (a sent message is about 300 bytes): curl's
   * smallest receive buffer (1 KB; a larger reply takes more reads) keeps
   * the memory of thousands of calls in flight low. */
  http_request_set_recv_buffer(req, 1024);
  return req;
}

struct http_request *botapi_request_json(struct botapi *api,
                                         const char *method, char *json,
                                         size_t len, struct buf *err) {
  struct http_request *req = botapi_request(api, method, err);
  if (!req) {
    free(json);
    return NULL;
  }
  http_request_use_headers(req, api->json_headers);
  http_request_set_body(req, json, len);
  return req;
}

struct http_request *botapi_file_request(struct botapi *api,
                                         const char *file_path,
                                         struct buf *err) {
  if (!check_token(api, err)) return NULL;
  if (!file_path || !*file_path || strstr(file_path, "..")) {
    buf_printf(err, "invalid file path '%s'", file_path ? file_path : "");
    return NULL;
  }
  if (file_path[0] == '/') {
    /* A Bot API server started with --local serves no downloads: its
     * file_path is where the file lies on that server's disk. */
    buf_printf(err, "'%s' is a path on the Bot API server's own disk (it "
               "runs with --local): read the file there instead of "
               "downloading it", file_path);
    return NULL;
  }
  struct buf url = BUF_INIT;
  buf_printf(&url, "%s/file/bot%s/%s", api->api_root, api->token, file_path);
  struct http_request *req = http_request_new(api->http, url.data);
  memset(url.data, 0, url.len);
  buf_free(&url);
  return req;
}

static void set_description(struct botapi_reply *reply, const char *text,
                            size_t len) {
  buf_reset(&reply->description);
  char *clean = log_redacted_copy(text, len);
  buf_append_str(&reply->description, clean);
  free(clean);
}

static bool skip_result(struct json_reader *r, void *ud) {
  (void)ud;
  return json_skip(r, NULL);
}

static bool delimit_result(struct json_reader *r, void *ud) {
  (void)ud;
  return json_skip_unchecked(r, NULL);
}

void botapi_parse_reply(const struct http_request *req,
                        struct botapi_reply *reply) {
  botapi_parse_reply_with(req, reply, skip_result, NULL);
}

void botapi_parse_reply_with(const struct http_request *req,
                             struct botapi_reply *reply,
                             botapi_result_reader read_result, void *ud) {
  if (!read_result) read_result = delimit_result;
  memset(reply, 0, sizeof *reply);
  reply->http_status = http_request_status(req);
  if (!http_request_ok(req)) {
    reply->outcome = BOTAPI_NETWORK_ERROR;
    const char *e = http_request_error(req);
    struct buf msg = BUF_INIT;
    buf_printf(&msg, "network error: %s", e);
    set_description(reply, msg.data, msg.len);
    buf_free(&msg);
    return;
  }
  const struct buf *body = http_request_body(req);
  struct json_reader r;
  json_reader_init(&r, body->data ? body->data : "", body->len);
  bool have_ok = false, ok = false;
  struct json_slice key, desc = {0};
  if (json_object_begin(&r)) {
    while (json_object_next(&r, &key)) {
      if (json_slice_is(&key, "ok")) {
        have_ok = json_read_bool(&r, &ok);
      } else if (json_slice_is(&key, "result")) {
        const char *at = r.p;
        if (read_result(&r, ud) && !json_error(&r)) {
          while (at < r.p && (*at == ' ' || *at == '\t' || *at == '\n' ||
                              *at == '\r'))
            at++;
          reply->result.ptr = at;
          reply->result.len = (size_t)(r.p - at);
        } else if (!json_error(&r)) {
          r.error = "bad result";
          r.error_offset = (size_t)(r.p - r.start);
        }
      } else if (json_slice_is(&key, "error_code")) {
        struct json_number n;
        if (json_read_number(&r, &n) && n.is_integer) reply->error_code = n.i;
      } else if (json_slice_is(&key, "description")) {
        json_read_string(&r, &desc);
      } else if (json_slice_is(&key, "parameters")) {
        struct json_reader sub;
        if (json_skip(&r, &reply->parameters) &&
            json_find_member(reply->parameters.ptr, reply->parameters.len,
                             "retry_after", &sub)) {
          struct json_number n;
          /* From the server: clamp what no one should wait for (and
           * what a conversion to integer milliseconds cannot hold). */
          if (json_read_number(&sub, &n))
            reply->retry_after = !(n.d >= 0) ? 0
                                 : n.d > BOTAPI_MAX_RETRY_AFTER_S
                                     ? BOTAPI_MAX_RETRY_AFTER_S
                                     : n.d;
        }
      } else {
        json_skip(&r, NULL);
      }
    }
  }
  if (json_error(&r) || !json_finish(&r) || !have_ok) {
    reply->outcome = BOTAPI_BAD_RESPONSE;
    struct buf msg = BUF_INIT;
    if (json_error(&r))
      buf_printf(&msg, "bad response (HTTP %ld): invalid JSON at byte %zu: %s",
                 reply->http_status, json_error_offset(&r), json_error(&r));
    else
      buf_printf(&msg, "bad response (HTTP %ld): not a Bot API reply",
                 reply->http_status);
    set_description(reply, msg.data, msg.len);
    buf_free(&msg);
    memset(&reply->result, 0, sizeof reply->result);
    return;
  }
  if (ok) {
    reply->outcome = BOTAPI_OK;
    return;
  }
  if (!reply->error_code) reply->error_code = reply->http_status;
  if (reply->error_code < 400 || reply->error_code > 599) {
    /* "ok": false with no usable error code (an HTTP 200, say): a broken
     * server or proxy, not Telegram refusing the call. Worth a retry. */
    reply->outcome = BOTAPI_BAD_RESPONSE;
    struct buf msg = BUF_INIT;
    buf_printf(&msg, "bad response (HTTP %ld): \"ok\": false without an "
               "error code", reply->http_status);
    set_description(reply, msg.data, msg.len);
    buf_free(&msg);
    return;
  }
  reply->outcome = BOTAPI_API_ERROR;
  struct buf text = BUF_INIT;
  if (desc.ptr) json_unescape(&desc, &text);
  else buf_printf(&text, "HTTP %ld", reply->http_status);
  set_description(reply, text.data, text.len);
  buf_free(&text);
}

void botapi_reply_free(struct botapi_reply *reply) {
  buf_free(&reply->description);
}

bool botapi_reply_retryable(const struct botapi_reply *reply) {
  switch (reply->outcome) {
    case BOTAPI_OK: return false;
    case BOTAPI_NETWORK_ERROR: return true;
    case BOTAPI_BAD_RESPONSE: return true;
    case BOTAPI_API_ERROR:
      return reply->error_code == 429 || reply->error_code >= 500;
  }
  return false;
}
