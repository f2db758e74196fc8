#include "sandbox/sandbox_api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>

#include "base/json.h"
#include "base/log.h"
#include "net/botapi_methods.h"
#include "sandbox/entities.h"

/* Never shown: the bot is pointed at this server with it, and the log
 * redactor knows it. */
#define SANDBOX_TOKEN "7000000001:tghost-sandbox-token"
#define MAX_BODY (64L << 20)      /* uploads: Telegram's 50 MB and some */
#define HTTP_TIMEOUT_S 300        /* above any long-poll timeout */

struct sandbox_api {
  struct sbx_world *w;
  evutil_socket_t fd;
  char url[64];
  struct evhttp *http;
  struct event_base *base;
  struct sandbox_api_events ev;
  void *ud;
  bool polled;
  /* The long poll waiting for updates (one poller at a time). */
  struct evhttp_request *poll;
  int64_t poll_offset;
  int poll_limit;
  struct event *poll_timer;
  char *commands;                 /* setMyCommands, raw JSON */
};

const char *sandbox_api_token(void) { return SANDBOX_TOKEN; }
const char *sandbox_api_url(const struct sandbox_api *a) { return a->url; }
bool sandbox_api_polled(const struct sandbox_api *a) { return a->polled; }

/* --- parameters: a JSON object or multipart/form-data ------------------- */

struct param {
  char *name;
  char *value;        /* raw JSON (json) or text; files: their bytes */
  size_t len;
  bool json;
  char *filename;     /* a file part */
};

struct params {
  struct param *v;
  size_t n;
};

static void params_add(struct params *ps, const char *name, size_t nlen,
                       const char *value, size_t len, bool json,
                       const char *filename) {
  ps->v = xrealloc(ps->v, (ps->n + 1) * sizeof *ps->v);
  struct param *p = &ps->v[ps->n++];
  p->name = xstrndup(name, nlen);
  p->value = xmalloc(len + 1);
  memcpy(p->value, value, len);
  p->value[len] = '\0';
  p->len = len;
  p->json = json;
  p->filename = filename ? xstrdup(filename) : NULL;
}

static void params_free(struct params *ps) {
  for (size_t i = 0; i < ps->n; i++) {
    free(ps->v[i].name);
    free(ps->v[i].value);
    free(ps->v[i].filename);
  }
  free(ps->v);
}

static bool params_from_json(struct params *ps, const char *body, size_t len) {
  struct json_reader r;
  json_reader_init(&r, body, len);
  if (!json_object_begin(&r)) return false;
  struct json_slice key, span;
  while (json_object_next(&r, &key)) {
    if (!json_skip(&r, &span)) break;
    struct buf name = BUF_INIT;
    json_unescape(&key, &name);
    params_add(ps, name.data ? name.data : "", name.len, span.ptr, span.len,
               true, NULL);
    buf_free(&name);
  }
  return !json_error(&r);
}

/* The value of attr="..." in a header line, malloc'd, or NULL. */
static char *header_attr(const char *line, size_t len, const char *attr) {
  char pat[32];
  int plen = snprintf(pat, sizeof pat, "%s=\"", attr);
  for (size_t i = 0; i + (size_t)plen <= len; i++) {
    if (memcmp(line + i, pat, (size_t)plen) != 0) continue;
    if (i > 0 && line[i - 1] != ' ' && line[i - 1] != ';') continue;
    const char *v = line + i + plen;
    const char *q = memchr(v, '"', len - i - (size_t)plen);
    return q ? xstrndup(v, (size_t)(q - v)) : NULL;
  }
  return NULL;
}

static bool params_from_multipart(struct params *ps, const char *ct,
                                  const char *body, size_t len) {
  const char *b = strcasestr(ct, "boundary=");
  if (!b) return false;
  b += 9;
  size_t blen = strcspn(b, "; \r\n");
  if (*b == '"') {
    b++;
    blen = strcspn(b, "\"");
  }
  char delim[128];
  if (blen == 0 || blen + 5 >= sizeof delim) return false;
  int dl = snprintf(delim, sizeof delim, "\r\n--%.*s", (int)blen, b);
  const char *end = body + len;
  const char *p = memmem(body, len, delim + 2, (size_t)dl - 2);
  while (p) {
    p += dl - 2;
    if (end - p >= 2 && p[0] == '-' && p[1] == '-') return true;   /* the end */
    if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') p += 2;
    const char *hend = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
    if (!hend) return false;
    const char *data = hend + 4;
    const char *next = memmem(data, (size_t)(end - data), delim, (size_t)dl);
    if (!next) return false;
    char *name = NULL, *filename = NULL;
    for (const char *line = p; line < hend;) {
      const char *eol = memmem(line, (size_t)(hend - line), "\r\n", 2);
      if (!eol) eol = hend;
      size_t ll = (size_t)(eol - line);
      if (ll > 20 && strncasecmp(line, "Content-Disposition:", 20) == 0) {
        free(name);
        free(filename);
        name = header_attr(line, ll, "name");
        filename = header_attr(line, ll, "filename");
      }
      line = eol + 2;
    }
    if (name)
      params_add(ps, name, strlen(name), data, (size_t)(next - data), false,
                 filename);
    free(name);
    free(filename);
    p = next + 2;
  }
  return false;
}

static const struct param *pget(const struct params *ps, const char *name) {
  for (size_t i = 0; i < ps->n; i++)
    if (strcmp(ps->v[i].name, name) == 0) return &ps->v[i];
  return NULL;
}

/* A parameter as text: JSON strings unescaped, other JSON values as they
 * are written. False when absent or null. */
static bool ptext(const struct params *ps, const char *name, struct buf *out) {
  const struct param *p = pget(ps, name);
  if (!p || p->filename) return false;
  if (!p->json) {
    buf_append(out, p->value, p->len);
    return true;
  }
  struct json_reader r;
  json_reader_init(&r, p->value, p->len);
  enum json_kind k = json_peek(&r);
  if (k == JSON_NULL) return false;
  if (k == JSON_STRING) {
    struct json_slice s;
    if (!json_read_string(&r, &s)) return false;
    json_unescape(&s, out);
    if (!out->data) buf_reserve(out, 0);
    return true;
  }
  buf_append(out, p->value, p->len);
  return true;
}

static bool pint(const struct params *ps, const char *name, int64_t *out) {
  struct buf t = BUF_INIT;
  bool ok = ptext(ps, name, &t);
  if (ok) {
    char *end;
    errno = 0;
    long long v = strtoll(t.data, &end, 10);
    ok = !errno && end != t.data && *end == '\0';
    if (ok) *out = v;
  }
  buf_free(&t);
  return ok;
}

static bool pdouble(const struct params *ps, const char *name, double *out) {
  struct buf t = BUF_INIT;
  bool ok = ptext(ps, name, &t);
  if (ok) {
    char *end;
    *out = strtod(t.data, &end);
    ok = end != t.data && *end == '\0';
  }
  buf_free(&t);
  return ok;
}

static bool pbool(const struct params *ps, const char *name) {
  struct buf t = BUF_INIT;
  bool v = ptext(ps, name, &t) && strcmp(t.data, "true") == 0;
  buf_free(&t);
  return v;
}

/* A JSON-valued parameter (objects and arrays come as text in multipart). */
static bool praw(const struct params *ps, const char *name, const char **v,
                 size_t *len) {
  const struct param *p = pget(ps, name);
  if (!p || p->filename || (p->json && strcmp(p->value, "null") == 0))
    return false;
  *v = p->value;
  *len = p->len;
  return true;
}

/* --- one method call ----------------------------------------------------- */

struct call {
  struct sandbox_api *a;
  struct sbx_world *w;
  const char *method;
  struct params ps;
  struct buf result;    /* the "result" value */
  int status;           /* 200, or the error code */
  struct buf error;     /* the description of an error */
};

static void fail(struct call *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct call *c, int code, const char *fmt, ...) {
  if (c->status != 200) return;
  c->status = code;
  va_list ap;
  va_start(ap, fmt);
  buf_vprintf(&c->error, fmt, ap);
  va_end(ap);
}

static bool failed(const struct call *c) { return c->status != 200; }

static void note(struct call *c, const struct sbx_chat *chat,
                 const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void note(struct call *c, const struct sbx_chat *chat,
                 const char *fmt, ...) {
  struct buf text = BUF_INIT;
  va_list ap;
  va_start(ap, fmt);
  buf_vprintf(&text, fmt, ap);
  va_end(ap);
  if (c->a->ev.note) c->a->ev.note(c->a->ud, chat, text.data);
  buf_free(&text);
}

static struct sbx_chat *need_chat(struct call *c) {
  int64_t id;
  if (!pget(&c->ps, "chat_id")) {
    fail(c, 400, "Bad Request: chat_id is empty");
    return NULL;
  }
  struct sbx_chat *chat = pint(&c->ps, "chat_id", &id) ? world_chat(c->w, id)
                                                       : NULL;
  if (!chat) fail(c, 400, "Bad Request: chat not found");
  return chat;
}

static struct sbx_message *need_message(struct call *c, struct sbx_chat *chat,
                                        const char *param, const char *what) {
  int64_t id;
  if (pget(&c->ps, "inline_message_id")) {
    fail(c, 400, "Bad Request: the sandbox has no inline messages "
                 "(inline_message_id)");
    return NULL;
  }
  if (!pint(&c->ps, param, &id)) {
    fail(c, 400, "Bad Request: %s is empty", param);
    return NULL;
  }
  struct sbx_message *m = world_message(chat, id);
  if (!m) fail(c, 400, "Bad Request: %s not found", what);
  return m;
}

/* text (or caption) with its parse_mode or entities applied to m, as
 * Telegram applies them: the markup parsed (refused with Telegram's error
 * texts), the limits counted on the text shown, explicit entities checked
 * against it. */
static bool take_text(struct call *c, struct sbx_message *m, const char *param,
                      size_t max, bool required) {
  struct buf text = BUF_INIT, mode = BUF_INIT, shown = BUF_INIT, err = BUF_INIT;
  struct ent_list list = {0};
  bool caption = strcmp(param, "caption") == 0;
  bool ok = false;
  bool have = ptext(&c->ps, param, &text);
  enum ent_mode em = ENT_PLAIN;
  ptext(&c->ps, "parse_mode", &mode);
  const char *raw;
  size_t len;
  if (!entities_mode(mode.data, &em)) {
    fail(c, 400, "Bad Request: unsupported parse_mode");
  } else if (have && entities_parse(text.data ? text.data : "", text.len, em,
                                    &shown, &list, &err) != 0) {
    fail(c, 400, "Bad Request: can't parse entities: %s", err.data);
  } else if (!have || shown.len == 0) {
    if (required) fail(c, 400, "Bad Request: message text is empty");
    free(m->text);
    free(m->entities);
    m->text = m->entities = NULL;
    ok = !required;
  } else if (entities_utf16_length(shown.data, shown.len) > max) {
    fail(c, 400, "Bad Request: %s", caption ? "message caption is too long"
                                            : "message is too long");
  } else if (em == ENT_PLAIN &&
             praw(&c->ps, caption ? "caption_entities" : "entities", &raw, &len) &&
             entities_from_json(raw, len,
                                entities_utf16_length(shown.data, shown.len),
                                &list, &err) != 0) {
    fail(c, 400, "Bad Request: %s", err.data);
  } else {
    free(m->text);
    free(m->entities);
    m->text = buf_steal(&shown, NULL);
    m->entities = NULL;
    if (list.n) {
      struct buf json = BUF_INIT;
      entities_to_json(&list, &json);
      m->entities = buf_steal(&json, NULL);
    }
    ok = true;
  }
  ent_list_free(&list);
  buf_free(&text);
  buf_free(&mode);
  buf_free(&shown);
  buf_free(&err);
  return ok;
}

/* reply_markup: checked as Telegram checks it; a reply keyboard becomes the
 * chat's keyboard, remove_keyboard takes it away. */
static bool take_markup(struct call *c, struct sbx_message *m,
                        bool inline_only) {
  const char *raw;
  size_t len;
  free(m->markup);
  m->markup = NULL;
  if (!praw(&c->ps, "reply_markup", &raw, &len)) return true;
  struct sbx_keyboard kb;
  struct buf err = BUF_INIT;
  if (world_parse_keyboard(raw, len, &kb, &err) != 0) {
    fail(c, 400, "%s", err.data);
    buf_free(&err);
    return false;
  }
  buf_free(&err);
  if (inline_only && !kb.is_inline) {
    world_keyboard_free(&kb);
    fail(c, 400, "Bad Request: inline keyboard expected");
    return false;
  }
  m->markup = xstrndup(raw, len);
  struct sbx_chat *chat = m->chat;
  if (!kb.is_inline && kb.nbuttons) {
    free(chat->reply_keyboard);
    chat->reply_keyboard = xstrndup(raw, len);
    chat->reply_keyboard_msg = m->id;
  } else if (kb.remove) {
    free(chat->reply_keyboard);
    chat->reply_keyboard = NULL;
    chat->reply_keyboard_msg = 0;
  }
  world_keyboard_free(&kb);
  return true;
}

static bool take_reply_to(struct call *c, struct sbx_message *m) {
  int64_t id = 0;
  const char *raw;
  size_t len;
  if (praw(&c->ps, "reply_parameters", &raw, &len)) {
    struct json_reader at;
    struct json_number n;
    if (json_find_member(raw, len, "message_id", &at) &&
        json_read_number(&at, &n) && n.is_integer)
      id = n.i;
  } else {
    pint(&c->ps, "reply_to_message_id", &id);
  }
  if (!id) return true;
  if (!world_message(m->chat, id)) {
    fail(c, 400, "Bad Request: message to be replied not found");
    return false;
  }
  m->reply_to = id;
  return true;
}

/* A new message from the bot, or NULL after fail(). The caller fills it;
 * finish_message() publishes it. */
static struct sbx_message *new_message(struct call *c, struct sbx_chat *chat) {
  return world_add_message(c->w, chat, NULL);
}

/* Takes back a message whose parameters failed (it was never sent). */
static void drop_message(struct sbx_message *m) { m->deleted = true; }

static void finish_message(struct call *c, struct sbx_message *m) {
  if (failed(c)) {
    drop_message(m);
    return;
  }
  world_message_json(c->w, m, &c->result);
  if (c->a->ev.sent) c->a->ev.sent(c->a->ud, m);
}

/* --- methods ------------------------------------------------------------- */

static void m_getMe(struct call *c) {
  world_user_json(c->w, world_bot(c->w), &c->result);
  /* ..."} -> add what getMe says beyond a User. */
  c->result.len--;
  buf_append_str(&c->result, ",\"can_join_groups\":true,"
                             "\"can_read_all_group_messages\":true,"
                             "\"supports_inline_queries\":false}");
}

static void m_sendMessage(struct call *c) {
  struct sbx_chat *chat = need_chat(c);
  if (!chat) return;
  struct sbx_message *m = new_message(c, chat);
  if (take_text(c, m, "text", SBX_MAX_TEXT, true)) {
    if (take_reply_to(c, m)) take_markup(c, m, false);
  }
  finish_message(c, m);
}

/* The file a reference names: attach://<part>, a file_id or a URL. NULL
 * after fail(). */
static struct sbx_file *file_from_ref(struct call *c, const char *ref,
                                      const char *param, const char *kind) {
  if (!ref || !*ref) {
    fail(c, 400, "Bad Request: there is no %s in the request", param);
    return NULL;
  }
  struct sbx_file *f = NULL;
  if (strncmp(ref, "attach://", 9) == 0) {
    const struct param *part = pget(&c->ps, ref + 9);
    if (part && part->filename)
      f = world_add_file(c->w, kind, part->filename, part->len, NULL,
                         part->value);
    else
      fail(c, 400, "Bad Request: file for %s (%s) not found in the request",
           param, ref);
  } else if (strncmp(ref, "http://", 7) == 0 ||
             strncmp(ref, "https://", 8) == 0) {
    const char *slash = strrchr(ref, '/');
    f = world_add_file(c->w, kind, slash && slash[1] ? slash + 1 : ref, 0,
                       NULL, NULL);
  } else {
    f = world_file(c->w, ref);
    if (!f) fail(c, 400, "Bad Request: wrong file identifier/HTTP URL specified");
  }
  return f;
}

/* The file a send method's parameter holds: an upload, or a reference. */
static struct sbx_file *take_file(struct call *c, const char *param,
                                  const char *kind) {
  const struct param *p = pget(&c->ps, param);
  if (p && p->filename)
    return world_add_file(c->w, kind, p->filename, p->len, NULL, p->value);
  struct buf ref = BUF_INIT;
  ptext(&c->ps, param, &ref);
  struct sbx_file *f = file_from_ref(c, ref.data, param, kind);
  buf_free(&ref);
  return f;
}

/* The media members of a message holding file f. */
static void media_json(struct sbx_world *w, const char *kind,
                       const struct sbx_file *f, struct buf *out) {
  (void)w;
  buf_printf(out, "\"%s\":", kind);
  if (strcmp(kind, "photo") == 0) buf_append_char(out, '[');
  buf_append_str(out, "{\"file_id\":");
  json_write_string(out, f->file_id, strlen(f->file_id));
  buf_append_str(out, ",\"file_unique_id\":");
  json_write_string(out, f->unique_id, strlen(f->unique_id));
  buf_printf(out, ",\"file_size\":%zu", f->size);
  if (strcmp(kind, "photo") == 0 || strcmp(kind, "video") == 0 ||
      strcmp(kind, "animation") == 0 || strcmp(kind, "sticker") == 0)
    /* Not read from the file: the sandbox does not decode images. */
    buf_append_str(out, ",\"width\":512,\"height\":512");
  if (strcmp(kind, "sticker") == 0)
    buf_append_str(out, ",\"type\":\"regular\",\"is_animated\":false,"
                        "\"is_video\":false");
  if (strcmp(kind, "photo") != 0 && strcmp(kind, "sticker") != 0) {
    buf_append_str(out, ",\"file_name\":");
    json_write_string(out, f->name, strlen(f->name));
  }
  if (strcmp(kind, "audio") == 0 || strcmp(kind, "video") == 0 ||
      strcmp(kind, "voice") == 0 || strcmp(kind, "video_note") == 0 ||
      strcmp(kind, "animation") == 0)
    buf_append_str(out, ",\"duration\":1");
  buf_append_char(out, '}');
  if (strcmp(kind, "photo") == 0) buf_append_char(out, ']');
}

static void set_media(struct call *c, struct sbx_message *m, const char *kind,
                      const struct sbx_file *f) {
  struct buf media = BUF_INIT;
  media_json(c->w, kind, f, &media);
  m->media = buf_steal(&media, NULL);
  char size[32], summary[512];
  world_format_size(f->size, size, sizeof size);
  if (f->size || f->has_data || f->path)
    snprintf(summary, sizeof summary, "%s %s, %s", kind, f->name, size);
  else
    snprintf(summary, sizeof summary, "%s %s", kind, f->name);
  for (char *p = summary; *p && p < summary + strlen(kind); p++)
    if (*p == '_') *p = ' ';   /* "video note" */
  free(m->media_summary);
  m->media_summary = xstrdup(summary);
}

/* sendPhoto, sendDocument, ...: kind is the message field and parameter. */
static void send_file(struct call *c, const char *kind) {
  struct sbx_chat *chat = need_chat(c);
  if (!chat) return;
  struct sbx_file *f = take_file(c, kind, kind);
  if (!f) return;
  struct sbx_message *m = new_message(c, chat);
  set_media(c, m, kind, f);
  if (take_text(c, m, "caption", SBX_MAX_CAPTION, false) && take_reply_to(c, m))
    take_markup(c, m, false);
  finish_message(c, m);
}

static void m_sendMediaGroup(struct call *c) {
  struct sbx_chat *chat = need_chat(c);
  const char *raw;
  size_t len;
  if (!chat) return;
  if (!praw(&c->ps, "media", &raw, &len)) {
    fail(c, 400, "Bad Request: media is empty");
    return;
  }
  struct json_reader r;
  json_reader_init(&r, raw, len);
  struct sbx_message *made[10];
  size_t n = 0;
  if (!json_array_begin(&r)) fail(c, 400, "Bad Request: media must be an array");
  while (!failed(c) && json_array_next(&r)) {
    struct json_slice item;
    if (!json_skip(&r, &item)) break;
    if (n == 10) {
      fail(c, 400, "Bad Request: too many messages to send as an album");
      break;
    }
    struct params one = {0};
    params_from_json(&one, item.ptr, item.len);
    struct buf type = BUF_INIT, ref = BUF_INIT, caption = BUF_INIT;
    ptext(&one, "type", &type);
    ptext(&one, "media", &ref);
    /* An item's caption is parsed as a message's is. */
    struct call item_call = {.a = c->a, .w = c->w, .method = c->method,
                             .ps = one, .status = 200};
    struct sbx_message scratch = {0};
    if (!take_text(&item_call, &scratch, "caption", SBX_MAX_CAPTION, false))
      fail(c, item_call.status, "%s", item_call.error.data);
    else if (scratch.text)
      buf_append_str(&caption, scratch.text);
    free(scratch.text);
    free(scratch.entities);
    buf_free(&item_call.error);
    buf_free(&item_call.result);
    params_free(&one);
    const char *kind = type.data ? type.data : "document";
    struct sbx_file *f = failed(c) ? NULL : file_from_ref(c, ref.data, "media", kind);
    if (f) {
      struct sbx_message *m = new_message(c, chat);
      set_media(c, m, kind, f);
      if (caption.len) m->text = xstrdup(caption.data);
      made[n++] = m;
    }
    buf_free(&type);
    buf_free(&ref);
    buf_free(&caption);
  }
  if (!failed(c) && n == 0) fail(c, 400, "Bad Request: media is empty");
  if (failed(c)) {
    for (size_t i = 0; i < n; i++) drop_message(made[i]);
    return;
  }
  buf_append_char(&c->result, '[');
  for (size_t i = 0; i < n; i++) {
    if (i) buf_append_char(&c->result, ',');
    world_message_json(c->w, made[i], &c->result);
    if (c->a->ev.sent) c->a->ev.sent(c->a->ud, made[i]);
  }
  buf_append_char(&c->result, ']');
}

static void m_sendLocation(struct call *c) {
  struct sbx_chat *chat = need_chat(c);
  double lat, lon;
  if (!chat) return;
  if (!pdouble(&c->ps, "latitude", &lat) || !pdouble(&c->ps, "longitude", &lon)) {
    fail(c, 400, "Bad Request: latitude and longitude are required");
    return;
  }
  struct sbx_message *m = new_message(c, chat);
  struct buf media = BUF_INIT, title = BUF_INIT;
  bool venue = strcmp(c->method, "sendVenue") == 0;
  if (venue) {
    ptext(&c->ps, "title", &title);
    buf_append_str(&media, "\"venue\":{\"title\":");
    json_write_string(&media, title.data ? title.data : "", title.len);
    buf_printf(&media, ",\"address\":\"\",\"location\":{\"latitude\":%.6f,"
               "\"longitude\":%.6f}},", lat, lon);
  }
  buf_printf(&media, "\"location\":{\"latitude\":%.6f,\"longitude\":%.6f}", lat,
             lon);
  m->media = buf_steal(&media, NULL);
  char summary[256];
  snprintf(summary, sizeof summary, "%s%s%s%.4f, %.4f", venue ? "venue " : "",
           venue && title.data ? title.data : "", venue ? " at " : "location ",
           lat, lon);
  m->media_summary = xstrdup(summary);
  buf_free(&title);
  if (take_reply_to(c, m)) take_markup(c, m, false);
  finish_message(c, m);
}

static void m_sendContact(struct call *c) {
  struct sbx_chat *chat = need_chat(c);
  if (!chat) return;
  struct buf phone = BUF_INIT, name = BUF_INIT, media = BUF_INIT;
  ptext(&c->ps, "phone_number", &phone);
  ptext(&c->ps, "first_name", &name);
  if (!phone.len || !name.len) {
    fail(c, 400, "Bad Request: phone_number and first_name are required");
  } else {
    struct sbx_message *m = new_message(c, chat);
    buf_append_str(&media, "\"contact\":{\"phone_number\":");
    json_write_string(&media, phone.data, phone.len);
    buf_append_str(&media, ",\"first_name\":");
    json_write_string(&media, name.data, name.len);
    buf_append_char(&media, '}');
    m->media = buf_steal(&media, NULL);
    char summary[256];
    snprintf(summary, sizeof summary, "contact %s, %s", name.data, phone.data);
    m->media_summary = xstrdup(summary);
    if (take_reply_to(c, m)) take_markup(c, m, false);
    finish_message(c, m);
  }
  buf_free(&phone);
  buf_free(&name);
  buf_free(&media);
}

static void m_sendDice(struct call *c) {
  struct sbx_chat *chat = need_chat(c);
  if (!chat) return;
  struct buf emoji = BUF_INIT;
  if (!ptext(&c->ps, "emoji", &emoji) || !emoji.len)
    buf_append_str(&emoji, "🎲");
  int faces = 6;
  if (strcmp(emoji.data, "🎰") == 0) faces = 64;
  else if (strcmp(emoji.data, "🏀") == 0 || strcmp(emoji.data, "⚽") == 0) faces = 5;
  int value = 1 + (int)(((unsigned)rand()) % (unsigned)faces);
  struct sbx_message *m = new_message(c, chat);
  struct buf media = BUF_INIT;
  buf_append_str(&media, "\"dice\":{\"emoji\":");
  json_write_string(&media, emoji.data, emoji.len);
  buf_printf(&media, ",\"value\":%d}", value);
  m->media = buf_steal(&media, NULL);
  char summary[64];
  snprintf(summary, sizeof summary, "dice %s %d", emoji.data, value);
  m->media_summary = xstrdup(summary);
  buf_free(&emoji);
  if (take_reply_to(c, m)) take_markup(c, m, false);
  finish_message(c, m);
}

static void m_sendPoll(struct call *c) {
  struct sbx_chat *chat = need_chat(c);
  if (!chat) return;
  struct buf question = BUF_INIT, media = BUF_INIT, list = BUF_INIT,
             options_json = BUF_INIT;
  const char *raw;
  size_t len;
  int count = 0;
  ptext(&c->ps, "question", &question);
  if (praw(&c->ps, "options", &raw, &len)) {
    struct json_reader r;
    json_reader_init(&r, raw, len);
    if (json_array_begin(&r)) {
      while (json_array_next(&r)) {
        struct json_slice s;
        struct buf text = BUF_INIT;
        if (json_peek(&r) == JSON_STRING && json_read_string(&r, &s)) {
          json_unescape(&s, &text);
        } else {
          struct json_slice obj;
          struct json_reader at;
          if (json_skip(&r, &obj) &&
              json_find_member(obj.ptr, obj.len, "text", &at) &&
              json_read_string(&at, &s))
            json_unescape(&s, &text);
        }
        buf_printf(&options_json, "%s{\"text\":", count ? "," : "");
        json_write_string(&options_json, text.data ? text.data : "", text.len);
        buf_append_str(&options_json, ",\"voter_count\":0}");
        buf_printf(&list, "%s%s", count++ ? " / " : "", text.data ? text.data : "");
        buf_free(&text);
      }
    }
  }
  if (!question.len) {
    fail(c, 400, "Bad Request: poll question must be non-empty");
  } else if (count < 2) {
    fail(c, 400, "Bad Request: poll must have at least 2 option");
  } else {
    struct sbx_message *m = new_message(c, chat);
    buf_printf(&media, "\"poll\":{\"id\":\"%lld%lld\",\"question\":",
               (long long)chat->id, (long long)m->id);
    json_write_string(&media, question.data, question.len);
    struct buf anon = BUF_INIT;
    bool anonymous = !ptext(&c->ps, "is_anonymous", &anon) ||
                     strcmp(anon.data, "false") != 0;
    buf_free(&anon);
    buf_printf(&media, ",\"options\":[%s],\"total_voter_count\":0,"
               "\"is_closed\":false,\"is_anonymous\":%s,\"type\":\"regular\","
               "\"allows_multiple_answers\":false}", options_json.data,
               anonymous ? "true" : "false");
    m->media = buf_steal(&media, NULL);
    struct buf summary = BUF_INIT;
    buf_printf(&summary, "poll \"%s\": %s", question.data, list.data);
    m->media_summary = buf_steal(&summary, NULL);
    if (take_reply_to(c, m)) take_markup(c, m, false);
    finish_message(c, m);
  }
  buf_free(&question);
  buf_free(&media);
  buf_free(&list);
  buf_free(&options_json);
}

static void m_sendChatAction(struct call *c) {
  struct sbx_chat *chat = need_chat(c);
  if (!chat) return;
  struct buf action = BUF_INIT;
  if (!ptext(&c->ps, "action", &action) || !action.len) {
    fail(c, 400, "Bad Request: action is empty");
  } else {
    if (c->a->ev.action) c->a->ev.action(c->a->ud, chat, action.data);
    buf_append_str(&c->result, "true");
  }
  buf_free(&action);
}

/* sendMessageDraft: a preview of a message while it is generated, private
 * chats only. Checked as a message's text is and answered true; the
 * sandbox shows only the final message (drafts come at a rate of their
 * own and would make transcripts depend on timing). */
static void m_sendMessageDraft(struct call *c) {
  struct sbx_chat *chat = need_chat(c);
  if (!chat) return;
  int64_t id = 0;
  struct buf text = BUF_INIT;
  if (chat->type != SBX_PRIVATE)
    fail(c, 400, "Bad Request: message drafts can be sent only to private "
                 "chats");
  else if (!pint(&c->ps, "draft_id", &id) || id == 0)
    fail(c, 400, "Bad Request: draft_id must be non-zero");
  else if (!ptext(&c->ps, "text", &text) || !text.len)
    fail(c, 400, "Bad Request: message text is empty");
  else if (world_utf16_length(text.data) > SBX_MAX_TEXT)
    fail(c, 400, "Bad Request: message is too long");
  else
    buf_append_str(&c->result, "true");
  buf_free(&text);
}

static bool same(const char *a, const char *b) {
  return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* editMessageText, editMessageCaption, editMessageReplyMarkup. */
static void edit(struct call *c, const char *what) {
  struct sbx_chat *chat = pget(&c->ps, "inline_message_id") ? NULL : need_chat(c);
  if (failed(c)) return;
  if (!chat) {
    need_message(c, NULL, "message_id", "message to edit");
    return;
  }
  struct sbx_message *m = need_message(c, chat, "message_id", "message to edit");
  if (!m) return;
  if (m->from) {
    fail(c, 400, "Bad Request: message can't be edited");
    return;
  }
  bool text = strcmp(what, "text") == 0, caption = strcmp(what, "caption") == 0;
  if (text && m->media) {
    fail(c, 400, "Bad Request: there is no text in the message to edit");
    return;
  }
  if (caption && !m->media) {
    fail(c, 400, "Bad Request: there is no caption in the message to edit");
    return;
  }
  /* Edit a copy, so a failed edit changes nothing. */
  struct sbx_message copy = *m;
  copy.text = m->text ? xstrdup(m->text) : NULL;
  copy.entities = m->entities ? xstrdup(m->entities) : NULL;
  copy.markup = NULL;
  bool ok = true;
  if (text) ok = take_text(c, &copy, "text", SBX_MAX_TEXT, true);
  else if (caption) ok = take_text(c, &copy, "caption", SBX_MAX_CAPTION, false);
  /* As in Telegram, an edit without reply_markup removes the buttons. */
  if (ok) ok = take_markup(c, &copy, true);
  if (ok && same(copy.text, m->text) && same(copy.entities, m->entities) &&
      same(copy.markup, m->markup))
    fail(c, 400, "Bad Request: message is not modified: specified new message "
                 "content and reply markup are exactly the same as a current "
                 "content and reply markup of the message");
  if (failed(c)) {
    free(copy.text);
    free(copy.entities);
    free(copy.markup);
    return;
  }
  bool markup_only = same(copy.text, m->text) && same(copy.entities, m->entities);
  free(m->text);
  free(m->entities);
  free(m->markup);
  m->text = copy.text;
  m->entities = copy.entities;
  m->markup = copy.markup;
  m->edit_date = (int64_t)time(NULL);
  world_message_json(c->w, m, &c->result);
  if (c->a->ev.edited) c->a->ev.edited(c->a->ud, m, markup_only);
}

static void m_deleteMessage(struct call *c) {
  struct sbx_chat *chat = need_chat(c);
  if (!chat) return;
  struct sbx_message *m = need_message(c, chat, "message_id", "message to delete");
  if (!m) return;
  m->deleted = true;
  if (chat->reply_keyboard_msg == m->id) chat->reply_keyboard_msg = 0;
  if (c->a->ev.deleted) c->a->ev.deleted(c->a->ud, m);
  buf_append_str(&c->result, "true");
}

static void m_deleteMessages(struct call *c) {
  struct sbx_chat *chat = need_chat(c);
  const char *raw;
  size_t len;
  if (!chat) return;
  if (!praw(&c->ps, "message_ids", &raw, &len)) {
    fail(c, 400, "Bad Request: message_ids is empty");
    return;
  }
  struct json_reader r;
  json_reader_init(&r, raw, len);
  if (json_array_begin(&r)) {
    while (json_array_next(&r)) {
      struct json_number n;
      if (!json_read_number(&r, &n)) break;
      struct sbx_message *m = n.is_integer ? world_message(chat, n.i) : NULL;
      if (!m) continue;   /* deleteMessages skips what it cannot find */
      m->deleted = true;
      if (c->a->ev.deleted) c->a->ev.deleted(c->a->ud, m);
    }
  }
  buf_append_str(&c->result, "true");
}

static void m_answerCallbackQuery(struct call *c) {
  struct buf id = BUF_INIT, text = BUF_INIT;
  ptext(&c->ps, "callback_query_id", &id);
  struct sbx_query *q = id.len ? world_query(c->w, id.data) : NULL;
  if (!q || q->answered || q->kind != SBX_QUERY_CALLBACK) {
    fail(c, 400, "Bad Request: query is too old and response timeout expired "
                 "or query ID is invalid");
  } else {
    q->answered = true;
    bool have = ptext(&c->ps, "text", &text) && text.len;
    if (c->a->ev.answered)
      c->a->ev.answered(c->a->ud, q, have ? text.data : NULL,
                        pbool(&c->ps, "show_alert"));
    buf_append_str(&c->result, "true");
  }
  buf_free(&id);
  buf_free(&text);
}

/* A query of kind by its id parameter, or NULL after fail(). */
static struct sbx_query *need_query(struct call *c, const char *param,
                                    enum sbx_query_kind kind) {
  struct buf id = BUF_INIT;
  ptext(&c->ps, param, &id);
  struct sbx_query *q = id.len ? world_query(c->w, id.data) : NULL;
  buf_free(&id);
  if (!q || q->answered || q->kind != kind) {
    fail(c, 400, "Bad Request: query is too old and response timeout expired "
                 "or query ID is invalid");
    return NULL;
  }
  return q;
}

static void m_answerInlineQuery(struct call *c) {
  struct sbx_query *q = need_query(c, "inline_query_id", SBX_QUERY_INLINE);
  const char *raw;
  size_t len;
  if (!q) return;
  struct json_reader r;
  if (!praw(&c->ps, "results", &raw, &len) ||
      (json_reader_init(&r, raw, len), !json_array_begin(&r))) {
    fail(c, 400, "Bad Request: can't parse inline query results");
    return;
  }
  q->answered = true;
  if (c->a->ev.inline_answered) c->a->ev.inline_answered(c->a->ud, q, raw, len);
  buf_append_str(&c->result, "true");
}

/* "12.50 USD" from an amount in the currency's smallest units (Stars have
 * none). */
static void format_amount(int64_t amount, const char *currency, char *out,
                          size_t n) {
  if (strcmp(currency, "XTR") == 0)
    snprintf(out, n, "%lld XTR", (long long)amount);
  else
    snprintf(out, n, "%lld.%02lld %s", (long long)(amount / 100),
             (long long)(amount % 100), currency);
}

static void m_sendInvoice(struct call *c) {
  struct sbx_chat *chat = need_chat(c);
  if (!chat) return;
  struct buf title = BUF_INIT, desc = BUF_INIT, payload = BUF_INIT,
             currency = BUF_INIT, media = BUF_INIT;
  const char *raw;
  size_t len;
  int64_t total = 0;
  ptext(&c->ps, "title", &title);
  ptext(&c->ps, "description", &desc);
  ptext(&c->ps, "payload", &payload);
  ptext(&c->ps, "currency", &currency);
  if (praw(&c->ps, "prices", &raw, &len)) {
    struct json_reader r;
    json_reader_init(&r, raw, len);
    if (json_array_begin(&r)) {
      while (json_array_next(&r)) {
        struct json_slice obj;
        struct json_reader at;
        struct json_number amount;
        if (!json_skip(&r, &obj)) break;
        if (json_find_member(obj.ptr, obj.len, "amount", &at) &&
            json_read_number(&at, &amount) && amount.is_integer)
          total += amount.i;
      }
    }
  }
  if (!title.len) fail(c, 400, "Bad Request: title is empty");
  else if (!desc.len) fail(c, 400, "Bad Request: description is empty");
  else if (!payload.len) fail(c, 400, "Bad Request: payload is empty");
  else if (!currency.len) fail(c, 400, "Bad Request: currency is empty");
  else if (total <= 0) fail(c, 400, "Bad Request: prices are invalid");
  if (!failed(c)) {
    struct sbx_message *m = new_message(c, chat);
    buf_append_str(&media, "\"invoice\":{\"title\":");
    json_write_string(&media, title.data, title.len);
    buf_append_str(&media, ",\"description\":");
    json_write_string(&media, desc.data, desc.len);
    buf_append_str(&media, ",\"start_parameter\":\"\",\"currency\":");
    json_write_string(&media, currency.data, currency.len);
    buf_printf(&media, ",\"total_amount\":%lld}", (long long)total);
    m->media = buf_steal(&media, NULL);
    m->payload = xstrdup(payload.data);
    char amount[64];
    format_amount(total, currency.data, amount, sizeof amount);
    struct buf summary = BUF_INIT;
    buf_printf(&summary, "invoice \"%s\": %s, %s", title.data, desc.data, amount);
    m->media_summary = buf_steal(&summary, NULL);
    if (take_reply_to(c, m)) take_markup(c, m, false);
    finish_message(c, m);
  }
  buf_free(&title);
  buf_free(&desc);
  buf_free(&payload);
  buf_free(&currency);
  buf_free(&media);
}

static void m_answerPreCheckoutQuery(struct call *c) {
  struct sbx_query *q = need_query(c, "pre_checkout_query_id",
                                   SBX_QUERY_PRE_CHECKOUT);
  if (!q) return;
  bool ok = pbool(&c->ps, "ok");
  struct buf error = BUF_INIT;
  ptext(&c->ps, "error_message", &error);
  if (!ok && !error.len) {
    fail(c, 400, "Bad Request: error_message must be non-empty if ok is false");
  } else {
    q->answered = true;
    if (c->a->ev.pre_checkout_answered)
      c->a->ev.pre_checkout_answered(c->a->ud, q, ok, ok ? NULL : error.data);
    buf_append_str(&c->result, "true");
  }
  buf_free(&error);
}

/* forwardMessage and copyMessage. */
static void m_forward(struct call *c) {
  struct sbx_chat *to = need_chat(c);
  if (!to) return;
  int64_t from_id;
  struct sbx_chat *from = pint(&c->ps, "from_chat_id", &from_id)
                              ? world_chat(c->w, from_id) : NULL;
  if (!from) {
    fail(c, 400, "Bad Request: chat not found");
    return;
  }
  struct sbx_message *src = need_message(c, from, "message_id", "message to copy");
  if (!src) return;
  bool copy = strcmp(c->method, "copyMessage") == 0;
  struct sbx_message *m = new_message(c, to);
  m->text = src->text ? xstrdup(src->text) : NULL;
  m->entities = src->entities ? xstrdup(src->entities) : NULL;
  m->media = src->media ? xstrdup(src->media) : NULL;
  m->media_summary = src->media_summary ? xstrdup(src->media_summary) : NULL;
  if (!copy) {
    struct buf origin = BUF_INIT;
    buf_append_str(&origin, "\"forward_origin\":{\"type\":\"user\",\"sender_user\":");
    world_user_json(c->w, src->from ? src->from : world_bot(c->w), &origin);
    buf_printf(&origin, ",\"date\":%lld}", (long long)src->date);
    m->service = buf_steal(&origin, NULL);
  } else {
    if (pget(&c->ps, "caption") && src->media)
      take_text(c, m, "caption", SBX_MAX_CAPTION, false);
    take_markup(c, m, false);
  }
  if (failed(c)) {
    drop_message(m);
    return;
  }
  if (copy) {
    buf_printf(&c->result, "{\"message_id\":%lld}", (long long)m->id);
    if (c->a->ev.sent) c->a->ev.sent(c->a->ud, m);
  } else {
    finish_message(c, m);
  }
}

static void m_getFile(struct call *c) {
  struct buf id = BUF_INIT;
  ptext(&c->ps, "file_id", &id);
  struct sbx_file *f = id.len ? world_file(c->w, id.data) : NULL;
  if (!f) {
    fail(c, 400, "Bad Request: invalid file_id");
  } else if (!f->has_data && !f->path) {
    fail(c, 400, f->size > SBX_MAX_KEPT_FILE ? "Bad Request: file is too big"
                                             : "Bad Request: the sandbox has "
                                               "no content for this file");
  } else {
    buf_append_str(&c->result, "{\"file_id\":");
    json_write_string(&c->result, f->file_id, strlen(f->file_id));
    buf_append_str(&c->result, ",\"file_unique_id\":");
    json_write_string(&c->result, f->unique_id, strlen(f->unique_id));
    buf_printf(&c->result, ",\"file_size\":%zu,\"file_path\":\"files/%s\"}",
               f->size, f->file_id);
  }
  buf_free(&id);
}

static void m_getChat(struct call *c) {
  struct sbx_chat *chat = need_chat(c);
  if (!chat) return;
  world_chat_json(chat, &c->result);
  c->result.len--;
  buf_append_str(&c->result, ",\"accent_color_id\":0,\"max_reaction_count\":11}");
}

static void member_json(struct call *c, const struct sbx_chat *chat,
                        const struct sbx_user *u, struct buf *out) {
  const char *status = "member";
  if (u == world_bot(c->w)) status = "administrator";
  else if (chat->type == SBX_GROUP && chat->nmembers && chat->members[0] == u->id)
    status = "creator";
  buf_printf(out, "{\"status\":\"%s\",\"user\":", status);
  world_user_json(c->w, u, out);
  if (strcmp(status, "administrator") == 0)
    buf_append_str(out, ",\"can_be_edited\":false,\"is_anonymous\":false,"
                        "\"can_manage_chat\":true,\"can_delete_messages\":true,"
                        "\"can_restrict_members\":true,\"can_pin_messages\":true");
  else if (strcmp(status, "creator") == 0)
    buf_append_str(out, ",\"is_anonymous\":false");
  buf_append_char(out, '}');
}

static void m_getChatMember(struct call *c) {
  struct sbx_chat *chat = need_chat(c);
  int64_t uid;
  if (!chat) return;
  if (!pint(&c->ps, "user_id", &uid)) {
    fail(c, 400, "Bad Request: user_id is empty");
    return;
  }
  const struct sbx_user *u = NULL;
  if (uid == world_bot(c->w)->id) {
    u = world_bot(c->w);
  } else if (chat->type == SBX_PRIVATE) {
    if (chat->user->id == uid) u = chat->user;
  } else {
    for (size_t i = 0; i < chat->nmembers; i++) {
      if (chat->members[i] != uid) continue;
      struct sbx_chat *pc = world_chat(c->w, uid);
      if (pc) u = pc->user;
    }
  }
  if (!u) {
    fail(c, 400, "Bad Request: member not found");
    return;
  }
  member_json(c, chat, u, &c->result);
}

static void m_getChatMemberCount(struct call *c) {
  struct sbx_chat *chat = need_chat(c);
  if (!chat) return;
  buf_printf(&c->result, "%zu",
             chat->type == SBX_PRIVATE ? 2 : chat->nmembers + 1);
}

static void m_getChatAdministrators(struct call *c) {
  struct sbx_chat *chat = need_chat(c);
  if (!chat) return;
  buf_append_char(&c->result, '[');
  member_json(c, chat, world_bot(c->w), &c->result);
  struct sbx_chat *pc = chat->type == SBX_GROUP && chat->nmembers
                            ? world_chat(c->w, chat->members[0]) : NULL;
  if (pc) {
    buf_append_char(&c->result, ',');
    member_json(c, chat, pc->user, &c->result);
  }
  buf_append_char(&c->result, ']');
}

static const char *who(const struct sbx_message *m) {
  return m->from ? m->from->first_name : "its own";
}

static void m_setMessageReaction(struct call *c) {
  struct sbx_chat *chat = need_chat(c);
  if (!chat) return;
  struct sbx_message *m = need_message(c, chat, "message_id", "message");
  if (!m) return;
  const char *raw;
  size_t len;
  struct buf emojis = BUF_INIT;
  if (praw(&c->ps, "reaction", &raw, &len)) {
    struct json_reader r;
    json_reader_init(&r, raw, len);
    if (json_array_begin(&r)) {
      while (json_array_next(&r)) {
        struct json_slice obj, s;
        struct json_reader at;
        if (!json_skip(&r, &obj)) break;
        if (json_find_member(obj.ptr, obj.len, "emoji", &at) &&
            json_read_string(&at, &s)) {
          if (emojis.len) buf_append_char(&emojis, ' ');
          json_unescape(&s, &emojis);
        }
      }
    }
  }
  if (emojis.len)
    note(c, chat, "bot reacted %s to %s%s message #%lld", emojis.data, who(m),
         m->from ? "'s" : "", (long long)m->id);
  else
    note(c, chat, "bot removed its reaction to message #%lld", (long long)m->id);
  buf_free(&emojis);
  buf_append_str(&c->result, "true");
}

static void m_pin(struct call *c) {
  struct sbx_chat *chat = need_chat(c);
  if (!chat) return;
  bool pin = strcmp(c->method, "pinChatMessage") == 0;
  struct sbx_message *m = NULL;
  if (pin || pget(&c->ps, "message_id")) {
    m = need_message(c, chat, "message_id", "message to pin");
    if (!m) return;
  }
  if (m) note(c, chat, "bot %s message #%lld", pin ? "pinned" : "unpinned",
              (long long)m->id);
  else note(c, chat, "bot unpinned the pinned message");
  buf_append_str(&c->result, "true");
}

static void m_setMyCommands(struct call *c) {
  const char *raw;
  size_t len;
  if (!praw(&c->ps, "commands", &raw, &len)) {
    fail(c, 400, "Bad Request: commands is empty");
    return;
  }
  struct json_reader r;
  json_reader_init(&r, raw, len);
  struct buf list = BUF_INIT;
  if (json_array_begin(&r)) {
    while (json_array_next(&r)) {
      struct json_slice obj, s;
      struct json_reader at;
      if (!json_skip(&r, &obj)) break;
      if (json_find_member(obj.ptr, obj.len, "command", &at) &&
          json_read_string(&at, &s)) {
        buf_append_str(&list, list.len ? ", /" : "/");
        json_unescape(&s, &list);
      }
    }
  }
  if (json_error(&r)) {
    fail(c, 400, "Bad Request: can't parse commands JSON object");
  } else {
    free(c->a->commands);
    c->a->commands = xstrndup(raw, len);
    note(c, NULL, "bot set its command menu: %s", list.len ? list.data : "(empty)");
    buf_append_str(&c->result, "true");
  }
  buf_free(&list);
}

static void m_getMyCommands(struct call *c) {
  buf_append_str(&c->result, c->a->commands ? c->a->commands : "[]");
}

static void m_deleteMyCommands(struct call *c) {
  free(c->a->commands);
  c->a->commands = NULL;
  buf_append_str(&c->result, "true");
}

static void m_getWebhookInfo(struct call *c) {
  buf_printf(&c->result, "{\"url\":\"\",\"has_custom_certificate\":false,"
             "\"pending_update_count\":%zu}", world_undelivered(c->w));
}

static void m_true(struct call *c) { buf_append_str(&c->result, "true"); }

static void m_setWebhook(struct call *c) {
  fail(c, 400, "Bad Request: the sandbox serves getUpdates (long polling) "
               "only");
}

static void m_sendPhoto(struct call *c) { send_file(c, "photo"); }
static void m_sendDocument(struct call *c) { send_file(c, "document"); }
static void m_sendAudio(struct call *c) { send_file(c, "audio"); }
static void m_sendVideo(struct call *c) { send_file(c, "video"); }
static void m_sendAnimation(struct call *c) { send_file(c, "animation"); }
static void m_sendVoice(struct call *c) { send_file(c, "voice"); }
static void m_sendVideoNote(struct call *c) { send_file(c, "video_note"); }
static void m_sendSticker(struct call *c) { send_file(c, "sticker"); }
static void m_editMessageText(struct call *c) { edit(c, "text"); }
static void m_editMessageCaption(struct call *c) { edit(c, "caption"); }
static void m_editMessageReplyMarkup(struct call *c) { edit(c, "markup"); }

static const struct {
  const char *name;
  void (*fn)(struct call *c);
} emulated[] = {
    {"getMe", m_getMe},
    {"sendMessage", m_sendMessage},
    {"sendPhoto", m_sendPhoto},
    {"sendDocument", m_sendDocument},
    {"sendAudio", m_sendAudio},
    {"sendVideo", m_sendVideo},
    {"sendAnimation", m_sendAnimation},
    {"sendVoice", m_sendVoice},
    {"sendVideoNote", m_sendVideoNote},
    {"sendSticker", m_sendSticker},
    {"sendMediaGroup", m_sendMediaGroup},
    {"sendLocation", m_sendLocation},
    {"sendVenue", m_sendLocation},
    {"sendContact", m_sendContact},
    {"sendDice", m_sendDice},
    {"sendPoll", m_sendPoll},
    {"sendChatAction", m_sendChatAction},
    {"sendMessageDraft", m_sendMessageDraft},
    {"editMessageText", m_editMessageText},
    {"editMessageCaption", m_editMessageCaption},
    {"editMessageReplyMarkup", m_editMessageReplyMarkup},
    {"deleteMessage", m_deleteMessage},
    {"deleteMessages", m_deleteMessages},
    {"answerCallbackQuery", m_answerCallbackQuery},
    {"answerInlineQuery", m_answerInlineQuery},
    {"sendInvoice", m_sendInvoice},
    {"answerPreCheckoutQuery", m_answerPreCheckoutQuery},
    {"forwardMessage", m_forward},
    {"copyMessage", m_forward},
    {"getFile", m_getFile},
    {"getChat", m_getChat},
    {"getChatMember", m_getChatMember},
    {"getChatMemberCount", m_getChatMemberCount},
    {"getChatAdministrators", m_getChatAdministrators},
    {"setMessageReaction", m_setMessageReaction},
    {"pinChatMessage", m_pin},
    {"unpinChatMessage", m_pin},
    {"setMyCommands", m_setMyCommands},
    {"getMyCommands", m_getMyCommands},
    {"deleteMyCommands", m_deleteMyCommands},
    {"getWebhookInfo", m_getWebhookInfo},
    {"deleteWebhook", m_true},
    {"setWebhook", m_setWebhook},
    {"logOut", m_true},
    {"close", m_true},
};

/* Runs a method; c->status and c->result or c->error say how it went. */
static void dispatch(struct call *c) {
  /* Bot API method names are case-insensitive. */
  for (size_t i = 0; i < sizeof emulated / sizeof emulated[0]; i++) {
    if (strcasecmp(c->method, emulated[i].name) == 0) {
      c->method = emulated[i].name;
      emulated[i].fn(c);
      return;
    }
  }
  /* The rest of the Bot API (net/botapi_methods.c): answered true; a name
   * outside it gets Telegram's 404. */
  const struct botapi_method *m = botapi_method_find(c->method);
  if (m) {
    note(c, NULL, "bot called %s: the sandbox does not emulate it and "
         "answered true", m->name);
    buf_append_str(&c->result, "true");
    return;
  }
  note(c, NULL, "bot called %s: Telegram has no such method (404 Not Found)",
       c->method);
  fail(c, 404, "Not Found");
}

/* --- HTTP ---------------------------------------------------------------- */

static void reply_json(struct evhttp_request *req, int status,
                       const char *body, size_t len) {
  struct evbuffer *out = evbuffer_new();
  evbuffer_add(out, body, len);
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                    "application/json");
  const char *reason = status == 200 ? "OK"
                       : status == 400 ? "Bad Request"
                       : status == 401 ? "Unauthorized"
                       : status == 404 ? "Not Found"
                                       : "Error";
  evhttp_send_reply(req, status, reason, out);
  evbuffer_free(out);
}

static void reply_error(struct evhttp_request *req, int code,
                        const char *description) {
  struct buf body = BUF_INIT;
  buf_printf(&body, "{\"ok\":false,\"error_code\":%d,\"description\":", code);
  json_write_string(&body, description, strlen(description));
  buf_append_char(&body, '}');
  reply_json(req, code, body.data, body.len);
  buf_free(&body);
}

static void answer_poll(struct sandbox_api *a) {
  struct evhttp_request *req = a->poll;
  if (!req) return;
  a->poll = NULL;
  evtimer_del(a->poll_timer);
  struct buf body = BUF_INIT;
  buf_append_str(&body, "{\"ok\":true,\"result\":");
  world_collect_updates(a->w, a->poll_offset, a->poll_limit, &body);
  buf_append_char(&body, '}');
  reply_json(req, 200, body.data, body.len);
  buf_free(&body);
}

static void on_poll_timeout(evutil_socket_t fd, short what, void *arg) {
  answer_poll(arg);
}

static void get_updates(struct sandbox_api *a, struct evhttp_request *req,
                        const struct params *ps) {
  int64_t offset = 0, limit = 100, timeout = 0;
  pint(ps, "offset", &offset);
  pint(ps, "limit", &limit);
  pint(ps, "timeout", &timeout);
  if (limit < 1 || limit > 100) limit = 100;
  const char *raw;
  size_t len;
  if (praw(ps, "allowed_updates", &raw, &len))
    world_set_allowed_updates(a->w, raw, len);
  a->polled = true;
  /* An offset confirms everything below it, whatever happens next. */
  if (offset > 0) world_confirm(a->w, offset);
  /* A newer poll ends the one before (whose client has gone). */
  answer_poll(a);
  a->poll = req;
  a->poll_offset = offset;
  a->poll_limit = (int)limit;
  if (world_has_updates_from(a->w, offset) || timeout <= 0) {
    answer_poll(a);
    return;
  }
  struct timeval tv = {(time_t)timeout, 0};
  evtimer_add(a->poll_timer, &tv);
}

/* GET /file/bot<token>/files/<file_id> */
static void download(struct sandbox_api *a, struct evhttp_request *req,
                     const char *file_path) {
  struct sbx_file *f = strncmp(file_path, "files/", 6) == 0
                           ? world_file(a->w, file_path + 6) : NULL;
  struct evbuffer *out = evbuffer_new();
  int fd = -1;
  struct stat st;
  if (f && f->has_data) {
    evbuffer_add(out, f->data, f->size);
  } else if (f && f->path && (fd = open(f->path, O_RDONLY | O_CLOEXEC)) >= 0 &&
             fstat(fd, &st) == 0) {
    /* libevent sends it with sendfile(2) and closes fd; an empty file it
     * would try to mmap, fail and leak its segment, so it sends nothing. */
    if (st.st_size > 0) evbuffer_add_file(out, fd, 0, st.st_size);
    else close(fd);
    fd = -1;
  } else {
    if (fd >= 0) close(fd);
    evbuffer_free(out);
    reply_error(req, 404, "Not Found");
    return;
  }
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                    "application/octet-stream");
  evhttp_send_reply(req, 200, "OK", out);
  evbuffer_free(out);
}

static void on_request(struct evhttp_request *req, void *arg) {
  struct sandbox_api *a = arg;
  /* Small answers go out at once (no delayed-ACK stall). */
  struct evhttp_connection *conn = evhttp_request_get_connection(req);
  struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
  if (bev) {
    int one = 1;
    setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  const char *uri = evhttp_request_get_uri(req);
  size_t plen = strcspn(uri, "?");
  char *path = xstrndup(uri, plen);
  static const char bot_prefix[] = "/bot" SANDBOX_TOKEN "/";
  static const char file_prefix[] = "/file/bot" SANDBOX_TOKEN "/";
  if (strncmp(path, file_prefix, sizeof file_prefix - 1) == 0) {
    download(a, req, path + sizeof file_prefix - 1);
    free(path);
    return;
  }
  if (strncmp(path, bot_prefix, sizeof bot_prefix - 1) != 0) {
    reply_error(req, strncmp(path, "/bot", 4) == 0 ? 401 : 404,
                strncmp(path, "/bot", 4) == 0 ? "Unauthorized" : "Not Found");
    free(path);
    return;
  }
  struct call c = {.a = a, .w = a->w, .status = 200};
  c.method = path + sizeof bot_prefix - 1;
  struct evbuffer *in = evhttp_request_get_input_buffer(req);
  size_t len = evbuffer_get_length(in);
  const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
  const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req),
                                      "Content-Type");
  bool ok = true;
  if (len && ct && strncasecmp(ct, "multipart/form-data", 19) == 0)
    ok = params_from_multipart(&c.ps, ct, body, len);
  else if (len)
    ok = params_from_json(&c.ps, body, len);
  if (!ok) {
    reply_error(req, 400, "Bad Request: can't parse the request parameters");
  } else if (strcasecmp(c.method, "getUpdates") == 0) {
    get_updates(a, req, &c.ps);
  } else {
    dispatch(&c);
    if (c.status == 200) {
      struct buf reply = BUF_INIT;
      buf_append_str(&reply, "{\"ok\":true,\"result\":");
      buf_append(&reply, c.result.data ? c.result.data : "true",
                 c.result.data ? c.result.len : 4);
      buf_append_char(&reply, '}');
      reply_json(req, 200, reply.data, reply.len);
      buf_free(&reply);
    } else {
      reply_error(req, c.status, c.error.data ? c.error.data : "Error");
    }
  }
  params_free(&c.ps);
  buf_free(&c.result);
  buf_free(&c.error);
  free(path);
}

/* --- lifecycle ----------------------------------------------------------- */

struct sandbox_api *sandbox_api_new(struct sbx_world *w, struct buf *err) {
  evutil_socket_t fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    buf_printf(err, "sandbox: cannot create a socket: %s", strerror(errno));
    return NULL;
  }
  struct sockaddr_in sin = {0};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t slen = sizeof sin;
  if (bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
      listen(fd, 128) != 0 ||
      getsockname(fd, (struct sockaddr *)&sin, &slen) != 0 ||
      evutil_make_socket_nonblocking(fd) != 0) {
    buf_printf(err, "sandbox: cannot listen on 127.0.0.1: %s", strerror(errno));
    close(fd);
    return NULL;
  }
  struct sandbox_api *a = xcalloc(1, sizeof *a);
  a->w = w;
  a->fd = fd;
  snprintf(a->url, sizeof a->url, "http://127.0.0.1:%d", ntohs(sin.sin_port));
  return a;
}

int sandbox_api_start(struct sandbox_api *a, struct event_base *base,
                      const struct sandbox_api_events *ev, void *ud,
                      struct buf *err) {
  a->base = base;
  a->ev = *ev;
  a->ud = ud;
  a->http = evhttp_new(base);
  if (!a->http || !evhttp_accept_socket_with_handle(a->http, a->fd)) {
    buf_append_str(err, "sandbox: cannot start the HTTP server");
    return -1;
  }
  a->fd = -1;   /* evhttp owns it now */
  evhttp_set_gencb(a->http, on_request, a);
  evhttp_set_max_body_size(a->http, MAX_BODY);
  evhttp_set_timeout(a->http, HTTP_TIMEOUT_S);
  evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
  a->poll_timer = evtimer_new(base, on_poll_timeout, a);
  return 0;
}

int64_t sandbox_api_push_update(struct sandbox_api *a, const char *type,
                                const char *object_json) {
  int64_t id = world_push_update(a->w, type, object_json);
  if (id && a->poll && id >= a->poll_offset) answer_poll(a);
  return id;
}

void sandbox_api_free(struct sandbox_api *a) {
  if (!a) return;
  /* A waiting poll is answered (and so freed by evhttp) before the server
   * goes. */
  answer_poll(a);
  if (a->poll_timer) event_free(a->poll_timer);
  if (a->http) evhttp_free(a->http);
  if (a->fd >= 0) close(a->fd);
  free(a->commands);
  free(a);
}
