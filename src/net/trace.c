#include "net/trace.h"

#include <stdbool.h>
#include <string.h>

#include "net/botapi.h"
#include "base/json.h"

#define SHORT_TEXT 60   /* characters of a text shown in a trace line */

/* s cut to SHORT_TEXT characters (never inside a UTF-8 sequence), one
 * line. */
static void short_text(const char *s, size_t len, struct buf *out) {
  size_t chars = 0, i;
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c & 0xC0) != 0x80 && chars++ == SHORT_TEXT) break;
    if (c == '\n') buf_append_str(out, " / ");
    else buf_append_char(out, (char)c);
  }
  if (i < len) buf_append_str(out, "...");
  if (!out->data) buf_reserve(out, 0);
}

/* A string member of obj (raw JSON), unescaped into out. */
static bool string_member(const char *obj, size_t len, const char *name,
                          struct buf *out) {
  struct json_reader at;
  struct json_slice s;
  if (!json_find_member(obj, len, name, &at) || json_peek(&at) != JSON_STRING ||
      !json_read_string(&at, &s))
    return false;
  json_unescape(&s, out);
  return true;
}

static bool object_member(const char *obj, size_t len, const char *name,
                          struct json_slice *span) {
  struct json_reader at;
  return json_find_member(obj, len, name, &at) &&
         json_peek(&at) == JSON_OBJECT && json_skip(&at, span);
}

static bool int_member(const char *obj, size_t len, const char *name,
                       int64_t *out) {
  struct json_reader at;
  struct json_number n;
  if (!json_find_member(obj, len, name, &at) || !json_read_number(&at, &n) ||
      !n.is_integer)
    return false;
  *out = n.i;
  return true;
}

void trace_update(int gen, int64_t update_id, int partition, bool redelivered,
                  const char *json, size_t len) {
  if (!log_trace_enabled()) return;
  /* The update's type is its one member besides update_id. */
  struct json_reader r;
  struct json_slice key, type = {0}, obj = {0};
  json_reader_init(&r, json, len);
  if (json_object_begin(&r)) {
    while (json_object_next(&r, &key)) {
      if (!json_slice_is(&key, "update_id") && !type.ptr) {
        type = key;
        json_skip(&r, &obj);
      } else {
        json_skip(&r, NULL);
      }
    }
  }
  struct buf msg = BUF_INIT, members = BUF_INIT, text = BUF_INIT,
             from = BUF_INIT, shown = BUF_INIT;
  buf_printf(&msg, "update %.*s", (int)type.len, type.ptr ? type.ptr : "?");
  buf_printf(&members, "\"event\":\"update\",\"type\":\"%.*s\"", (int)type.len,
             type.ptr ? type.ptr : "");
  if (obj.ptr) {
    struct json_slice chat, user, message;
    int64_t id;
    /* The chat of a message, or of the message a callback query is on. */
    if ((object_member(obj.ptr, obj.len, "chat", &chat) ||
         (object_member(obj.ptr, obj.len, "message", &message) &&
          object_member(message.ptr, message.len, "chat", &chat))) &&
        int_member(chat.ptr, chat.len, "id", &id)) {
      buf_printf(&msg, " chat %lld", (long long)id);
      buf_printf(&members, ",\"chat\":%lld", (long long)id);
    }
    if ((object_member(obj.ptr, obj.len, "from", &user) ||
         object_member(obj.ptr, obj.len, "user", &user)) &&
        int_member(user.ptr, user.len, "id", &id)) {
      string_member(user.ptr, user.len, "first_name", &from);
      buf_printf(&msg, " from %s", from.data ? from.data : "?");
      buf_printf(&members, ",\"from\":%lld", (long long)id);
    }
    if (string_member(obj.ptr, obj.len, "text", &text) ||
        string_member(obj.ptr, obj.len, "caption", &text) ||
        string_member(obj.ptr, obj.len, "data", &text) ||
        string_member(obj.ptr, obj.len, "query", &text)) {
      short_text(text.data ? text.data : "", text.len, &shown);
      buf_printf(&msg, ": \"%s\"", shown.data ? shown.data : "");
      buf_append_str(&members, ",\"text\":");
      json_write_string(&members, shown.data ? shown.data : "", shown.len);
    }
  }
  if (partition >= 0) {
    buf_printf(&msg, " (partition %d)", partition);
    buf_printf(&members, ",\"partition\":%d", partition);
  }
  if (redelivered) {
    buf_append_str(&msg, " redelivered");
    buf_append_str(&members, ",\"redelivered\":true");
  }
  struct log_fields f = {gen, update_id};
  log_trace(&f, members.data, "%s", msg.data);
  buf_free(&msg);
  buf_free(&members);
  buf_free(&text);
  buf_free(&from);
  buf_free(&shown);
}

void trace_call(const struct log_fields *fields, const char *method,
                const char *chat, double ms, const struct http_request *req,
                const char *start_error) {
  if (!log_trace_enabled()) return;
  struct buf msg = BUF_INIT, members = BUF_INIT;
  buf_printf(&msg, "call %s", method);
  buf_append_str(&members, "\"event\":\"call\",\"method\":");
  json_write_string(&members, method, strlen(method));
  if (chat && *chat) {
    buf_printf(&msg, " chat %s", chat);
    buf_append_str(&members, ",\"chat\":");
    json_write_string(&members, chat, strlen(chat));
  }
  buf_printf(&members, ",\"ms\":%.1f", ms);
  if (start_error) {
    buf_printf(&msg, ": %s (%.1f ms)", start_error, ms);
    buf_append_str(&members, ",\"status\":\"error\",\"error\":");
    json_write_string(&members, start_error, strlen(start_error));
  } else {
    struct botapi_reply reply;
    botapi_parse_reply(req, &reply);
    if (reply.outcome == BOTAPI_OK) {
      buf_printf(&msg, ": ok (%.1f ms)", ms);
      buf_append_str(&members, ",\"status\":\"ok\"");
    } else {
      const char *desc = reply.description.data ? reply.description.data : "";
      if (reply.outcome == BOTAPI_API_ERROR) {
        buf_printf(&msg, ": %lld %s (%.1f ms)", (long long)reply.error_code,
                   desc, ms);
        buf_printf(&members, ",\"status\":\"error\",\"error_code\":%lld",
                   (long long)reply.error_code);
      } else {
        buf_printf(&msg, ": %s (%.1f ms)", desc, ms);
        buf_append_str(&members, ",\"status\":\"error\"");
      }
      buf_append_str(&members, ",\"error\":");
      json_write_string(&members, desc, strlen(desc));
    }
    botapi_reply_free(&reply);
  }
  log_trace(fields, members.data, "%s", msg.data);
  buf_free(&msg);
  buf_free(&members);
}
