#include "sandbox/sandbox_chat.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "sandbox/entities.h"
#include "sandbox/sandbox_api.h"
#include "sandbox/sandbox_script.h"
#include "sandbox/sandbox_term.h"
#include "sandbox/sandbox_world.h"

#define DEFAULT_USER "Alice"
#define DEFAULT_TIMEOUT_S 5.0
/* Telegram stops waiting for the answer to a button press after about
 * 15 s (TGHOST_SANDBOX_ANSWER_TIMEOUT=SECS changes it, for tests). */
#define QUERY_TIMEOUT_MS 15000
#define DRAIN_CHECK_MS 20
#define DRAIN_MAX_MS 3000         /* for the bot to fetch what was queued */
#define MAX_SEEN 200              /* unmatched bot lines kept for a script */

struct pending_query {
  char id[24];
  uint64_t deadline_ms;
};

struct sandbox {
  struct sbx_world *w;
  struct sandbox_api *api;
  struct event_base *base;
  struct sandbox_hooks hooks;
  void *ud;
  char *bot_script;
  struct sbx_user *user;          /* who types */
  struct sbx_chat *chat;          /* where */

  bool stdin_ok, stdin_pollable, rewrite_echo;
  struct event *stdin_ev;
  struct buf input;
  struct term *term;              /* the line editor, at a terminal */
  bool dim_logs;                  /* log lines shown dimmed, apart */

  bool quitting;
  int quit_status;
  struct event *drain_timer;
  uint64_t drain_started_ms;

  char *inline_results;           /* the last answer to an inline query */
  char *inline_query;             /* ... and the query it answered */
  bool business_connected;        /* :business has announced the connection */
  unsigned charges;               /* payments made */

  struct pending_query *queries;  /* button presses not answered yet */
  size_t nqueries;
  long query_timeout_ms;
  struct event *query_timer;

  /* --script */
  bool scripted;
  struct script script;
  size_t step;
  double timeout_s;
  bool waiting;                   /* for the expectation at step */
  struct event *step_ev;          /* runs the next steps from the loop */
  long poll_waited_ms;            /* before the first line: see run_steps */
  struct event *expect_timer;
  char **seen;                    /* bot lines after the last match */
  size_t nseen;
  int met;
};

/* --- output -------------------------------------------------------------- */

static void on_bot_line(struct sandbox *sb, const char *line);

/* Prints one line. Lines about what the bot did (bot_side) are what a
 * script's expectations match. */
static void emit(struct sandbox *sb, bool bot_side, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void emit(struct sandbox *sb, bool bot_side, const char *fmt, ...) {
  struct buf line = BUF_INIT;
  va_list ap;
  va_start(ap, fmt);
  buf_vprintf(&line, fmt, ap);
  va_end(ap);
  log_redact(&line);
  if (sb->term) term_hide(sb->term);
  fwrite(line.data, 1, line.len, stdout);
  fputc('\n', stdout);
  fflush(stdout);
  if (sb->term) term_show(sb->term);
  if (bot_side) on_bot_line(sb, line.data);
  buf_free(&line);
}

/* Text over several lines: the first after head, the rest indented. */
static void emit_text(struct sandbox *sb, bool bot_side, const char *head,
                      const char *text) {
  const char *p = text ? text : "";
  size_t indent = strlen(head);
  bool first = true;
  for (;;) {
    size_t n = strcspn(p, "\n");
    if (first) emit(sb, bot_side, "%s%.*s", head, (int)n, p);
    else emit(sb, bot_side, "%*s%.*s", (int)indent, "", (int)n, p);
    first = false;
    if (!p[n]) break;
    p += n + 1;
  }
}

static void chat_label(const struct sandbox *sb, const struct sbx_chat *c,
                       char *out, size_t n) {
  out[0] = '\0';
  /* Lines about a group always name it, as yours there do. */
  if (!c || (c == sb->chat && c->type == SBX_PRIVATE)) return;
  snprintf(out, n, "[%s] ", c->type == SBX_GROUP ? c->title : c->user->first_name);
}

static void emit_keyboard(struct sandbox *sb, const char *markup) {
  if (!markup) return;
  struct sbx_keyboard kb;
  struct buf err = BUF_INIT;
  if (world_parse_keyboard(markup, strlen(markup), &kb, &err) != 0) {
    buf_free(&err);
    return;
  }
  buf_free(&err);
  if (kb.remove) emit(sb, true, "    (keyboard removed)");
  if (kb.force_reply) emit(sb, true, "    (asks you to reply)");
  size_t b = 0;
  for (size_t r = 0; r < kb.nrows; r++) {
    struct buf row = BUF_INIT;
    for (size_t i = 0; i < kb.row_len[r]; i++, b++) {
      const struct sbx_button *btn = &kb.buttons[b];
      buf_printf(&row, "%s[%zu] %s", i ? "   " : "", b + 1, btn->text);
      switch (btn->kind) {
        case SBX_BTN_URL: buf_printf(&row, " -> %s", btn->value); break;
        case SBX_BTN_OTHER: buf_printf(&row, " (%s)", btn->value); break;
        case SBX_BTN_LOCATION: buf_append_str(&row, " (sends your location)"); break;
        case SBX_BTN_CONTACT: buf_append_str(&row, " (sends your contact)"); break;
        default: break;
      }
    }
    emit(sb, true, "    %s%s", kb.is_inline ? "" : "keyboard: ",
         row.data ? row.data : "");
    buf_free(&row);
  }
  world_keyboard_free(&kb);
}

/* The formatting of a bot's message, one line: entities: bold "Hi",
 * text_link "here" (https://example.com/). */
static void emit_entities(struct sandbox *sb, const struct sbx_message *m) {
  if (!m->entities || !m->text) return;
  struct json_reader r;
  json_reader_init(&r, m->entities, strlen(m->entities));
  if (!json_array_begin(&r)) return;
  struct buf line = BUF_INIT;
  size_t tlen = strlen(m->text);
  while (json_array_next(&r)) {
    struct json_slice obj, s;
    struct json_reader at;
    struct json_number off, len;
    if (!json_skip(&r, &obj)) break;
    struct buf type = BUF_INIT, extra = BUF_INIT;
    if (json_find_member(obj.ptr, obj.len, "type", &at) && json_read_string(&at, &s))
      json_unescape(&s, &type);
    if ((json_find_member(obj.ptr, obj.len, "url", &at) ||
         json_find_member(obj.ptr, obj.len, "language", &at) ||
         json_find_member(obj.ptr, obj.len, "custom_emoji_id", &at)) &&
        json_read_string(&at, &s))
      json_unescape(&s, &extra);
    struct json_reader uat;
    struct json_number uid;
    if (json_find_member(obj.ptr, obj.len, "user", &at)) {
      struct json_slice u;
      if (json_skip(&at, &u) && json_find_member(u.ptr, u.len, "id", &uat) &&
          json_read_number(&uat, &uid) && uid.is_integer)
        buf_printf(&extra, "user %lld", (long long)uid.i);
    }
    if (json_find_member(obj.ptr, obj.len, "offset", &at) &&
        json_read_number(&at, &off) &&
        json_find_member(obj.ptr, obj.len, "length", &at) &&
        json_read_number(&at, &len)) {
      size_t b, e;
      entities_byte_range(m->text, tlen, (int32_t)off.i, (int32_t)len.i, &b, &e);
      buf_printf(&line, "%s%s \"%.*s\"", line.len ? ", " : "",
                 type.data ? type.data : "?", (int)(e > b ? e - b : 0), m->text + b);
      if (extra.len) buf_printf(&line, " (%s)", extra.data);
    }
    buf_free(&type);
    buf_free(&extra);
  }
  if (line.len) emit(sb, true, "    entities: %s", line.data);
  buf_free(&line);
}

static void show_message(struct sandbox *sb, const struct sbx_message *m,
                         const char *verb) {
  char label[160], head[256], reply[48] = "";
  chat_label(sb, m->chat, label, sizeof label);
  if (m->reply_to)
    snprintf(reply, sizeof reply, " (reply to #%lld)", (long long)m->reply_to);
  snprintf(head, sizeof head, "%sbot%s #%lld%s: ", label, verb,
           (long long)m->id, reply);
  struct buf body = BUF_INIT;
  if (m->media_summary) {
    buf_printf(&body, "[%s]", m->media_summary);
    if (m->text) buf_printf(&body, " %s", m->text);
  } else if (m->service && strstr(m->service, "forward_origin")) {
    buf_printf(&body, "(forwarded) %s", m->text ? m->text : "");
  } else {
    buf_append_str(&body, m->text ? m->text : "");
  }
  emit_text(sb, true, head, body.data);
  buf_free(&body);
  emit_entities(sb, m);
  emit_keyboard(sb, m->markup);
}

/* --- what the bot did ------------------------------------------------------ */

static void on_sent(void *ud, const struct sbx_message *m) {
  show_message(ud, m, "");
}

static void on_edited(void *ud, const struct sbx_message *m, bool markup_only) {
  struct sandbox *sb = ud;
  if (!markup_only) {
    show_message(sb, m, " edited");
    return;
  }
  char label[160];
  chat_label(sb, m->chat, label, sizeof label);
  if (!m->markup) {
    emit(sb, true, "%sbot removed the buttons of #%lld", label, (long long)m->id);
    return;
  }
  emit(sb, true, "%sbot changed the buttons of #%lld:", label, (long long)m->id);
  emit_keyboard(sb, m->markup);
}

static void on_deleted(void *ud, const struct sbx_message *m) {
  struct sandbox *sb = ud;
  char label[160];
  chat_label(sb, m->chat, label, sizeof label);
  if (m->from)
    emit(sb, true, "%sbot deleted %s's message #%lld", label,
         m->from->first_name, (long long)m->id);
  else
    emit(sb, true, "%sbot deleted #%lld", label, (long long)m->id);
}

static void on_action(void *ud, const struct sbx_chat *c, const char *action) {
  struct sandbox *sb = ud;
  static const char *const names[][2] = {
      {"typing", "typing"},
      {"upload_photo", "sending a photo"},
      {"record_video", "recording a video"},
      {"upload_video", "sending a video"},
      {"record_voice", "recording a voice message"},
      {"upload_voice", "sending a voice message"},
      {"upload_document", "sending a file"},
      {"choose_sticker", "choosing a sticker"},
      {"find_location", "finding a location"},
      {"record_video_note", "recording a video message"},
      {"upload_video_note", "sending a video message"},
  };
  const char *what = action;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(action, names[i][0]) == 0) what = names[i][1];
  char label[160];
  chat_label(sb, c, label, sizeof label);
  emit(sb, true, "%sbot is %s...", label, what);
}

static void forget_query(struct sandbox *sb, const char *id) {
  for (size_t i = 0; i < sb->nqueries; i++) {
    if (strcmp(sb->queries[i].id, id) == 0) {
      sb->queries[i] = sb->queries[--sb->nqueries];
      return;
    }
  }
}

static void on_answered(void *ud, const struct sbx_query *q, const char *text,
                        bool alert) {
  struct sandbox *sb = ud;
  forget_query(sb, q->id);
  if (!text) return;   /* the spinner stops; nothing to show */
  emit(sb, true, alert ? "bot shows an alert: %s" : "bot answered the button: %s",
       text);
}

static void on_note(void *ud, const struct sbx_chat *c, const char *text) {
  struct sandbox *sb = ud;
  char label[160];
  chat_label(sb, c, label, sizeof label);
  emit(sb, true, "%s(%s)", label, text);
}

/* A field of a JSON object as text ("" when absent). */
static void json_text(const char *obj, size_t len, const char *name,
                      struct buf *out) {
  struct json_reader at;
  struct json_slice s;
  struct json_number num;
  if (!json_find_member(obj, len, name, &at)) return;
  if (json_peek(&at) == JSON_STRING && json_read_string(&at, &s))
    json_unescape(&s, out);
  else if (json_read_number(&at, &num) && num.is_integer)
    buf_printf(out, "%lld", (long long)num.i);
}

/* The id and a label of result n (1-based) of an answer to an inline
 * query; false when there is none. */
static bool inline_result(const char *results, size_t n, struct buf *id,
                          struct buf *label) {
  struct json_reader r;
  json_reader_init(&r, results, strlen(results));
  if (!json_array_begin(&r)) return false;
  for (size_t i = 1; json_array_next(&r); i++) {
    struct json_slice obj;
    if (!json_skip(&r, &obj)) return false;
    if (i != n) continue;
    json_text(obj.ptr, obj.len, "id", id);
    json_text(obj.ptr, obj.len, "title", label);
    if (!label->len) {
      buf_append_char(label, '(');
      json_text(obj.ptr, obj.len, "type", label);
      buf_append_char(label, ')');
    }
    return true;
  }
  return false;
}

static void on_inline_answered(void *ud, const struct sbx_query *q,
                               const char *results, size_t len) {
  struct sandbox *sb = ud;
  free(sb->inline_results);
  free(sb->inline_query);
  sb->inline_results = xstrndup(results, len);
  sb->inline_query = xstrdup(q->data);
  struct buf line = BUF_INIT, id = BUF_INIT, label = BUF_INIT;
  size_t n = 0;
  while (inline_result(sb->inline_results, n + 1, &id, &label)) {
    n++;
    buf_printf(&line, "%s[%zu] %s", n > 1 ? "   " : "", n, label.data);
    buf_reset(&id);
    buf_reset(&label);
  }
  emit(sb, true, "bot answered the inline query \"%s\" with %zu result(s)%s%s",
       q->data, n, n ? ": " : "", n ? line.data : "");
  buf_free(&line);
  buf_free(&id);
  buf_free(&label);
}

static void push_message(struct sandbox *sb, const struct sbx_message *m,
                         const char *type);

static void on_pre_checkout_answered(void *ud, const struct sbx_query *q,
                                     bool ok, const char *error) {
  struct sandbox *sb = ud;
  struct sbx_chat *chat = world_chat(sb->w, q->chat_id);
  struct sbx_message *invoice = chat ? world_message(chat, q->message_id) : NULL;
  if (!ok) {
    emit(sb, true, "bot declined the payment: %s", error ? error : "");
    return;
  }
  if (!invoice || !invoice->media) return;
  struct buf obj = BUF_INIT, currency = BUF_INIT, total = BUF_INIT;
  buf_printf(&obj, "{%s}", invoice->media);
  struct json_reader at;
  struct json_slice inv;
  if (json_find_member(obj.data, obj.len, "invoice", &at) && json_skip(&at, &inv)) {
    json_text(inv.ptr, inv.len, "currency", &currency);
    json_text(inv.ptr, inv.len, "total_amount", &total);
  }
  struct sbx_message *m = world_add_message(sb->w, chat, q->from);
  struct buf service = BUF_INIT;
  unsigned n = ++sb->charges;
  buf_append_str(&service, "\"successful_payment\":{\"currency\":");
  json_write_string(&service, currency.data ? currency.data : "", currency.len);
  buf_printf(&service, ",\"total_amount\":%s,\"invoice_payload\":",
             total.len ? total.data : "0");
  json_write_string(&service, q->data, strlen(q->data));
  buf_printf(&service, ",\"telegram_payment_charge_id\":\"sandbox-charge-%u\","
             "\"provider_payment_charge_id\":\"sandbox-provider-%u\"}", n, n);
  m->service = buf_steal(&service, NULL);
  long long minor = total.len ? strtoll(total.data, NULL, 10) : 0;
  if (currency.data && strcmp(currency.data, "XTR") == 0)
    emit(sb, false, "%s paid %lld XTR (the bot accepted the payment)",
         q->from->first_name, minor);
  else
    emit(sb, false, "%s paid %lld.%02lld %s (the bot accepted the payment)",
         q->from->first_name, minor / 100, minor % 100,
         currency.data ? currency.data : "");
  push_message(sb, m, "message");
  buf_free(&obj);
  buf_free(&currency);
  buf_free(&total);
}

/* Button presses the bot leaves unanswered: Telegram gives up after a
 * while, and so does the sandbox, visibly. */
static void on_query_timer(evutil_socket_t fd, short what, void *arg) {
  struct sandbox *sb = arg;
  uint64_t now = clock_now_ms();
  for (size_t i = 0; i < sb->nqueries;) {
    if (sb->queries[i].deadline_ms > now) {
      i++;
      continue;
    }
    struct sbx_query *q = world_query(sb->w, sb->queries[i].id);
    if (q && !q->answered) {
      q->answered = true;   /* a late answer now fails, as in Telegram */
      emit(sb, true, "(the bot did not answer the press of \"%s\" within %d s: "
           "Telegram stops the button's spinner; call ctx:answerCallbackQuery())",
           q->button, (int)((sb->query_timeout_ms + 500) / 1000));
    }
    sb->queries[i] = sb->queries[--sb->nqueries];
  }
  if (sb->nqueries == 0) evtimer_del(sb->query_timer);
}

/* --- what the user does ---------------------------------------------------- */

/* Queues an update; says so when the bot's allowed_updates leave it out. */
static void push(struct sandbox *sb, const char *type, const char *json) {
  if (sandbox_api_push_update(sb->api, type, json) == 0)
    emit(sb, true, "(Telegram does not send this %s update: the bot's "
         "allowed_updates leave %s out)", type, type);
}

static void push_message(struct sandbox *sb, const struct sbx_message *m,
                         const char *type) {
  struct buf json = BUF_INIT;
  world_message_json(sb->w, m, &json);
  push(sb, type, json.data);
  buf_free(&json);
}

/* A user entering a group they are not in yet: a service message. */
static void ensure_member(struct sandbox *sb) {
  if (sb->chat->type != SBX_GROUP || !world_join(sb->chat, sb->user)) return;
  struct sbx_message *m = world_add_message(sb->w, sb->chat, sb->user);
  struct buf members = BUF_INIT;
  buf_append_str(&members, "\"new_chat_members\":[");
  world_user_json(sb->w, sb->user, &members);
  buf_append_str(&members, "],\"new_chat_member\":");
  world_user_json(sb->w, sb->user, &members);
  m->service = buf_steal(&members, NULL);
  emit(sb, false, "%s joined %s", sb->user->first_name, sb->chat->title);
  push_message(sb, m, "message");
}

/* The prompt says who types, and where: "Alice> ", "[Lua fans] Bob> ". */
static void prompt_for(const struct sandbox *sb, struct buf *prompt) {
  if (sb->chat->type == SBX_GROUP) buf_printf(prompt, "[%s] ", sb->chat->title);
  buf_printf(prompt, "%s> ", sb->user->first_name);
}

static void update_prompt(struct sandbox *sb) {
  if (!sb->term) return;
  struct buf prompt = BUF_INIT;
  prompt_for(sb, &prompt);
  term_set_prompt(sb->term, prompt.data);
  buf_free(&prompt);
}

static void user_line(struct sandbox *sb, const char *body) {
  char label[160] = "";
  if (sb->chat->type == SBX_GROUP)
    snprintf(label, sizeof label, "[%s] ", sb->chat->title);
  struct buf head = BUF_INIT;
  buf_printf(&head, "%s%s: ", label, sb->user->first_name);
  emit_text(sb, false, head.data, body);
  buf_free(&head);
}

static struct sbx_message *say(struct sandbox *sb, const char *text,
                               int64_t reply_to) {
  ensure_member(sb);
  struct sbx_message *m = world_add_message(sb->w, sb->chat, sb->user);
  m->text = xstrdup(text);
  m->reply_to = reply_to;
  struct buf ents = BUF_INIT;
  if (world_text_entities(text, &ents)) m->entities = buf_steal(&ents, NULL);
  buf_free(&ents);
  push_message(sb, m, "message");
  return m;
}

static struct sbx_message *last_user_message(struct sandbox *sb) {
  for (size_t i = sb->chat->nmessages; i > 0; i--) {
    struct sbx_message *m = sb->chat->messages[i - 1];
    if (!m->deleted && m->from == sb->user && m->text && !m->media) return m;
  }
  return NULL;
}

static void send_location(struct sandbox *sb, double lat, double lon) {
  ensure_member(sb);
  struct sbx_message *m = world_add_message(sb->w, sb->chat, sb->user);
  struct buf media = BUF_INIT;
  buf_printf(&media, "\"location\":{\"latitude\":%.6f,\"longitude\":%.6f}", lat,
             lon);
  m->media = buf_steal(&media, NULL);
  char summary[96];
  snprintf(summary, sizeof summary, "location %.4f, %.4f", lat, lon);
  m->media_summary = xstrdup(summary);
  push_message(sb, m, "message");
}

static void send_contact(struct sandbox *sb) {
  ensure_member(sb);
  struct sbx_message *m = world_add_message(sb->w, sb->chat, sb->user);
  struct buf media = BUF_INIT;
  buf_append_str(&media, "\"contact\":{\"phone_number\":\"+10000000000\","
                         "\"first_name\":");
  json_write_string(&media, sb->user->first_name, strlen(sb->user->first_name));
  buf_printf(&media, ",\"user_id\":%lld}", (long long)sb->user->id);
  m->media = buf_steal(&media, NULL);
  m->media_summary = xstrdup("contact +10000000000");
  push_message(sb, m, "message");
}

/* The keyboard :click N means: the newest inline keyboard of a bot message
 * in this chat, or the reply keyboard if it was shown later. */
static const struct sbx_message *newest_keyboard(struct sandbox *sb) {
  const struct sbx_message *found = NULL;
  for (size_t i = sb->chat->nmessages; i > 0 && !found; i--) {
    const struct sbx_message *m = sb->chat->messages[i - 1];
    if (!m->deleted && !m->from && m->markup &&
        strstr(m->markup, "\"inline_keyboard\""))
      found = m;
  }
  int64_t reply_msg = sb->chat->reply_keyboard ? sb->chat->reply_keyboard_msg : 0;
  if (reply_msg && (!found || reply_msg > found->id))
    return sb->chat->messages[reply_msg - 1];
  return found;
}

static int click(struct sandbox *sb, const char *arg, struct buf *err) {
  long long msg_id = 0, n = 0;
  char tail;
  if (sscanf(arg, "%lld:%lld %c", &msg_id, &n, &tail) != 2) {
    msg_id = 0;
    if (sscanf(arg, "%lld %c", &n, &tail) != 1) {
      buf_append_str(err, "usage: :click N (a button of the newest keyboard) or "
                          ":click MSG:N");
      return -1;
    }
  }
  const struct sbx_message *m = msg_id ? world_message(sb->chat, msg_id)
                                       : newest_keyboard(sb);
  const char *markup = NULL;
  if (m && msg_id == 0 && m->id == sb->chat->reply_keyboard_msg &&
      sb->chat->reply_keyboard)
    markup = sb->chat->reply_keyboard;
  else if (m && m->markup && strstr(m->markup, "\"inline_keyboard\""))
    markup = m->markup;
  if (!markup) {
    if (msg_id) buf_printf(err, "message #%lld has no buttons", msg_id);
    else buf_append_str(err, "there are no buttons to press in this chat");
    return -1;
  }
  struct sbx_keyboard kb;
  if (world_parse_keyboard(markup, strlen(markup), &kb, err) != 0) return -1;
  if (n < 1 || (size_t)n > kb.nbuttons) {
    buf_printf(err, "there is no button %lld (the keyboard of #%lld has %zu)", n,
               (long long)m->id, kb.nbuttons);
    world_keyboard_free(&kb);
    return -1;
  }
  const struct sbx_button *b = &kb.buttons[n - 1];
  int rc = 0;
  switch (b->kind) {
    case SBX_BTN_CALLBACK: {
      emit(sb, false, "%s pressed [%lld] %s", sb->user->first_name, n, b->text);
      struct sbx_query *q = world_add_query(sb->w, m, sb->user, b->value, b->text);
      struct buf json = BUF_INIT;
      buf_append_str(&json, "{\"id\":");
      json_write_string(&json, q->id, strlen(q->id));
      buf_append_str(&json, ",\"from\":");
      world_user_json(sb->w, sb->user, &json);
      buf_append_str(&json, ",\"message\":");
      world_message_json(sb->w, m, &json);
      buf_printf(&json, ",\"chat_instance\":\"%lld\",\"data\":",
                 (long long)(m->chat->id * 7 + 3));
      json_write_string(&json, b->value, strlen(b->value));
      buf_append_char(&json, '}');
      push(sb, "callback_query", json.data);
      buf_free(&json);
      sb->queries = xrealloc(sb->queries, (sb->nqueries + 1) * sizeof *sb->queries);
      struct pending_query *pq = &sb->queries[sb->nqueries++];
      snprintf(pq->id, sizeof pq->id, "%s", q->id);
      pq->deadline_ms = clock_now_ms() + (uint64_t)sb->query_timeout_ms;
      struct timeval tv = {0, 100000};
      if (!evtimer_pending(sb->query_timer, NULL))
        evtimer_add(sb->query_timer, &tv);
      break;
    }
    case SBX_BTN_URL:
      emit(sb, false, "%s opened [%lld] %s: %s (the sandbox does not browse)",
           sb->user->first_name, n, b->text, b->value);
      break;
    case SBX_BTN_OTHER:
      buf_printf(err, "button %lld is a %s button: the sandbox does not emulate "
                 "those", n, b->value);
      rc = -1;
      break;
    case SBX_BTN_TEXT:
      user_line(sb, b->text);
      say(sb, b->text, 0);
      break;
    case SBX_BTN_LOCATION:
      user_line(sb, "[location 48.8584, 2.2945]");
      send_location(sb, 48.8584, 2.2945);
      break;
    case SBX_BTN_CONTACT:
      user_line(sb, "[contact +10000000000]");
      send_contact(sb);
      break;
  }
  if (rc == 0 && !kb.is_inline && kb.one_time) {
    free(sb->chat->reply_keyboard);
    sb->chat->reply_keyboard = NULL;
  }
  world_keyboard_free(&kb);
  return rc;
}

/* :photo PATH [caption] and :document PATH [caption]. */
static int send_file(struct sandbox *sb, const char *kind, const char *arg,
                     struct buf *err) {
  size_t n = strcspn(arg, " \t");
  if (n == 0) {
    buf_printf(err, "usage: :%s PATH [caption]", kind);
    return -1;
  }
  struct buf path = BUF_INIT;
  if (arg[0] != '/' && sb->scripted)
    buf_printf(&path, "%s/", sb->script.dir);
  buf_append(&path, arg, n);
  const char *caption = arg + n;
  while (*caption == ' ' || *caption == '\t') caption++;
  /* A stat of a file the user named, once, like reading the line itself. */
  struct stat st;
  if (stat(path.data, &st) != 0 || !S_ISREG(st.st_mode)) {
    buf_printf(err, "cannot send %s: %s", path.data,
               errno ? strerror(errno) : "not a regular file");
    buf_free(&path);
    return -1;
  }
  const char *slash = strrchr(path.data, '/');
  const char *name = slash ? slash + 1 : path.data;
  struct sbx_file *f = world_add_file(sb->w, kind, name, (size_t)st.st_size,
                                      path.data, NULL);
  buf_free(&path);
  ensure_member(sb);
  struct sbx_message *m = world_add_message(sb->w, sb->chat, sb->user);
  struct buf media = BUF_INIT;
  buf_printf(&media, "\"%s\":", kind);
  bool photo = strcmp(kind, "photo") == 0;
  buf_append_str(&media, photo ? "[{\"file_id\":" : "{\"file_id\":");
  json_write_string(&media, f->file_id, strlen(f->file_id));
  buf_append_str(&media, ",\"file_unique_id\":");
  json_write_string(&media, f->unique_id, strlen(f->unique_id));
  buf_printf(&media, ",\"file_size\":%zu", f->size);
  if (photo) {
    buf_append_str(&media, ",\"width\":512,\"height\":512}]");
  } else {
    buf_append_str(&media, ",\"file_name\":");
    json_write_string(&media, f->name, strlen(f->name));
    buf_append_char(&media, '}');
  }
  m->media = buf_steal(&media, NULL);
  char size[32];
  world_format_size(f->size, size, sizeof size);
  struct buf summary = BUF_INIT;
  buf_printf(&summary, "%s %s, %s", kind, f->name, size);
  m->media_summary = buf_steal(&summary, NULL);
  if (*caption) m->text = xstrdup(caption);
  struct buf shown = BUF_INIT;
  buf_printf(&shown, "[%s]%s%s", m->media_summary, *caption ? " " : "", caption);
  user_line(sb, shown.data);
  buf_free(&shown);
  push_message(sb, m, "message");
  return 0;
}

static void switch_to_group(struct sandbox *sb, const char *title) {
  bool created;
  sb->chat = world_group(sb->w, title, &created);
  if (!created) {
    emit(sb, false, "-- now in the group %s, as %s", title, sb->user->first_name);
    ensure_member(sb);
    return;
  }
  emit(sb, false, "-- %s created the group %s and added the bot",
       sb->user->first_name, title);
  world_join(sb->chat, sb->user);
  /* What Telegram sends a bot added to a group: its own membership change
   * and the service message. */
  struct buf json = BUF_INIT;
  buf_append_str(&json, "{\"chat\":");
  world_chat_json(sb->chat, &json);
  buf_append_str(&json, ",\"from\":");
  world_user_json(sb->w, sb->user, &json);
  buf_printf(&json, ",\"date\":%lld,\"old_chat_member\":{\"status\":\"left\","
             "\"user\":", (long long)time(NULL));
  world_user_json(sb->w, world_bot(sb->w), &json);
  buf_append_str(&json, "},\"new_chat_member\":{\"status\":\"member\",\"user\":");
  world_user_json(sb->w, world_bot(sb->w), &json);
  buf_append_str(&json, "}}");
  push(sb, "my_chat_member", json.data);
  buf_free(&json);
  struct sbx_message *m = world_add_message(sb->w, sb->chat, sb->user);
  struct buf members = BUF_INIT;
  buf_append_str(&members, "\"new_chat_members\":[");
  world_user_json(sb->w, world_bot(sb->w), &members);
  buf_append_str(&members, "],\"new_chat_member\":");
  world_user_json(sb->w, world_bot(sb->w), &members);
  m->service = buf_steal(&members, NULL);
  push_message(sb, m, "message");
}

/* --- update types beyond messages ----------------------------------------- */

/* The newest message of the bot in this chat whose media has field (NULL:
 * any), or message #id. */
static struct sbx_message *bot_message(struct sandbox *sb, long long id,
                                       const char *field) {
  if (id) return world_message(sb->chat, id);
  for (size_t i = sb->chat->nmessages; i > 0; i--) {
    struct sbx_message *m = sb->chat->messages[i - 1];
    if (m->deleted || m->from) continue;
    if (!field || (m->media && strstr(m->media, field))) return m;
  }
  return NULL;
}

/* :inline TEXT: the user types "@bot TEXT" in some chat. */
static int inline_query(struct sandbox *sb, const char *text) {
  struct sbx_query *q = world_add_other_query(sb->w, SBX_QUERY_INLINE, NULL,
                                              sb->user, text);
  struct buf json = BUF_INIT;
  buf_append_str(&json, "{\"id\":");
  json_write_string(&json, q->id, strlen(q->id));
  buf_append_str(&json, ",\"from\":");
  world_user_json(sb->w, sb->user, &json);
  buf_append_str(&json, ",\"query\":");
  json_write_string(&json, text, strlen(text));
  buf_append_str(&json, ",\"offset\":\"\",\"chat_type\":\"sender\"}");
  emit(sb, false, "%s types @%s %s", sb->user->first_name,
       world_bot(sb->w)->username, text);
  push(sb, "inline_query", json.data);
  buf_free(&json);
  return 0;
}

/* :choose N: the user picks result N of the last answer to an inline query. */
static int choose(struct sandbox *sb, const char *arg, struct buf *err) {
  char *end;
  long n = strtol(arg, &end, 10);
  struct buf id = BUF_INIT, label = BUF_INIT;
  if (end == arg || *end || n < 1) {
    buf_append_str(err, "usage: :choose N (a result of the last inline answer)");
    return -1;
  }
  if (!sb->inline_results || !inline_result(sb->inline_results, (size_t)n, &id, &label)) {
    buf_printf(err, "there is no inline result %ld to choose", n);
    buf_free(&id);
    buf_free(&label);
    return -1;
  }
  struct buf json = BUF_INIT;
  buf_append_str(&json, "{\"result_id\":");
  json_write_string(&json, id.data ? id.data : "", id.len);
  buf_append_str(&json, ",\"from\":");
  world_user_json(sb->w, sb->user, &json);
  buf_append_str(&json, ",\"query\":");
  json_write_string(&json, sb->inline_query, strlen(sb->inline_query));
  buf_append_char(&json, '}');
  emit(sb, false, "%s chose [%ld] %s", sb->user->first_name, n, label.data);
  push(sb, "chosen_inline_result", json.data);
  buf_free(&json);
  buf_free(&id);
  buf_free(&label);
  return 0;
}

/* :react EMOJI [MSG]: a reaction to the bot's newest message (or #MSG). */
static int react(struct sandbox *sb, const char *arg, struct buf *err) {
  size_t n = strcspn(arg, " \t");
  long long id = 0;
  if (n == 0 || (arg[n] && sscanf(arg + n, "%lld", &id) != 1)) {
    buf_append_str(err, "usage: :react EMOJI [MSG]");
    return -1;
  }
  struct sbx_message *m = bot_message(sb, id, NULL);
  if (!m) {
    buf_append_str(err, id ? "there is no such message in this chat"
                           : "the bot has sent no message in this chat");
    return -1;
  }
  struct buf json = BUF_INIT;
  buf_append_str(&json, "{\"chat\":");
  world_chat_json(sb->chat, &json);
  buf_printf(&json, ",\"message_id\":%lld,\"user\":", (long long)m->id);
  world_user_json(sb->w, sb->user, &json);
  buf_printf(&json, ",\"date\":%lld,\"old_reaction\":[],\"new_reaction\":"
             "[{\"type\":\"emoji\",\"emoji\":", (long long)time(NULL));
  json_write_string(&json, arg, n);
  buf_append_str(&json, "}]}");
  emit(sb, false, "%s reacted %.*s to #%lld", sb->user->first_name, (int)n, arg,
       (long long)m->id);
  push(sb, "message_reaction", json.data);
  buf_free(&json);
  return 0;
}

/* :vote N: the user votes for option N of the bot's newest poll here. */
static int vote(struct sandbox *sb, const char *arg, struct buf *err) {
  char *end;
  long n = strtol(arg, &end, 10);
  if (end == arg || *end || n < 1) {
    buf_append_str(err, "usage: :vote N (an option of the bot's newest poll)");
    return -1;
  }
  struct sbx_message *m = bot_message(sb, 0, "\"poll\"");
  if (!m) {
    buf_append_str(err, "the bot has sent no poll in this chat");
    return -1;
  }
  struct buf obj = BUF_INIT, poll = BUF_INIT, id = BUF_INIT, options = BUF_INIT;
  buf_printf(&obj, "{%s}", m->media);
  struct json_reader at, opts;
  struct json_slice p, list;
  int rc = -1;
  if (json_find_member(obj.data, obj.len, "poll", &at) && json_skip(&at, &p) &&
      json_find_member(p.ptr, p.len, "options", &opts) && json_skip(&opts, &list)) {
    json_text(p.ptr, p.len, "id", &id);
    /* The options again, option n with one more vote. */
    struct json_reader r;
    json_reader_init(&r, list.ptr, list.len);
    long count = 0, total = 0;
    if (json_array_begin(&r)) {
      while (json_array_next(&r)) {
        struct json_slice o;
        struct buf text = BUF_INIT, votes = BUF_INIT;
        if (!json_skip(&r, &o)) break;
        json_text(o.ptr, o.len, "text", &text);
        json_text(o.ptr, o.len, "voter_count", &votes);
        long v = votes.len ? strtol(votes.data, NULL, 10) : 0;
        if (++count == n) v++;
        total += v;
        buf_printf(&options, "%s{\"text\":", count > 1 ? "," : "");
        json_write_string(&options, text.data ? text.data : "", text.len);
        buf_printf(&options, ",\"voter_count\":%ld}", v);
        buf_free(&text);
        buf_free(&votes);
      }
    }
    if (n > count) {
      buf_printf(err, "the poll has %ld options", count);
    } else {
      bool anonymous = strstr(m->media, "\"is_anonymous\":false") == NULL;
      struct buf media = BUF_INIT, question = BUF_INIT;
      json_text(p.ptr, p.len, "question", &question);
      buf_append_str(&media, "\"poll\":{\"id\":");
      json_write_string(&media, id.data ? id.data : "", id.len);
      buf_append_str(&media, ",\"question\":");
      json_write_string(&media, question.data ? question.data : "", question.len);
      buf_printf(&media, ",\"options\":[%s],\"total_voter_count\":%ld,"
                 "\"is_closed\":false,\"is_anonymous\":%s,\"type\":\"regular\","
                 "\"allows_multiple_answers\":false}", options.data, total,
                 anonymous ? "true" : "false");
      free(m->media);
      m->media = buf_steal(&media, NULL);
      emit(sb, false, "%s voted for option %ld of #%lld", sb->user->first_name, n,
           (long long)m->id);
      /* The bot's own poll changed: a poll update; a vote in a poll that
       * is not anonymous: a poll_answer. */
      struct buf json = BUF_INIT;
      buf_printf(&json, "{%s}", m->media);
      struct json_reader pat;
      struct json_slice pobj;
      if (json_find_member(json.data, json.len, "poll", &pat) && json_skip(&pat, &pobj)) {
        char *only = xstrndup(pobj.ptr, pobj.len);
        push(sb, "poll", only);
        free(only);
      }
      if (!anonymous) {
        buf_reset(&json);
        buf_append_str(&json, "{\"poll_id\":");
        json_write_string(&json, id.data ? id.data : "", id.len);
        buf_append_str(&json, ",\"user\":");
        world_user_json(sb->w, sb->user, &json);
        buf_printf(&json, ",\"option_ids\":[%ld]}", n - 1);
        push(sb, "poll_answer", json.data);
      }
      buf_free(&json);
      buf_free(&question);
      rc = 0;
    }
  } else {
    buf_append_str(err, "the bot's poll cannot be read");
  }
  buf_free(&obj);
  buf_free(&poll);
  buf_free(&id);
  buf_free(&options);
  return rc;
}

/* :pay: the user pays the bot's newest invoice here (a pre_checkout_query
 * the bot answers with answerPreCheckoutQuery). */
static int pay(struct sandbox *sb, struct buf *err) {
  struct sbx_message *m = bot_message(sb, 0, "\"invoice\"");
  if (!m || !m->payload) {
    buf_append_str(err, "the bot has sent no invoice in this chat");
    return -1;
  }
  struct buf obj = BUF_INIT, currency = BUF_INIT, total = BUF_INIT,
             title = BUF_INIT, json = BUF_INIT;
  buf_printf(&obj, "{%s}", m->media);
  struct json_reader at;
  struct json_slice inv;
  if (json_find_member(obj.data, obj.len, "invoice", &at) && json_skip(&at, &inv)) {
    json_text(inv.ptr, inv.len, "currency", &currency);
    json_text(inv.ptr, inv.len, "total_amount", &total);
    json_text(inv.ptr, inv.len, "title", &title);
  }
  struct sbx_query *q = world_add_other_query(sb->w, SBX_QUERY_PRE_CHECKOUT, m,
                                              sb->user, m->payload);
  buf_append_str(&json, "{\"id\":");
  json_write_string(&json, q->id, strlen(q->id));
  buf_append_str(&json, ",\"from\":");
  world_user_json(sb->w, sb->user, &json);
  buf_append_str(&json, ",\"currency\":");
  json_write_string(&json, currency.data ? currency.data : "", currency.len);
  buf_printf(&json, ",\"total_amount\":%s,\"invoice_payload\":",
             total.len ? total.data : "0");
  json_write_string(&json, m->payload, strlen(m->payload));
  buf_append_char(&json, '}');
  emit(sb, false, "%s pays the invoice \"%s\" (#%lld)", sb->user->first_name,
       title.data ? title.data : "", (long long)m->id);
  push(sb, "pre_checkout_query", json.data);
  buf_free(&obj);
  buf_free(&currency);
  buf_free(&total);
  buf_free(&title);
  buf_free(&json);
  return 0;
}

/* A chat_member update: the user's status in this group went from old to
 * new. */
static void member_update(struct sandbox *sb, const char *old, const char *new) {
  struct buf json = BUF_INIT;
  buf_append_str(&json, "{\"chat\":");
  world_chat_json(sb->chat, &json);
  buf_append_str(&json, ",\"from\":");
  world_user_json(sb->w, sb->user, &json);
  buf_printf(&json, ",\"date\":%lld,\"old_chat_member\":{\"status\":\"%s\","
             "\"user\":", (long long)time(NULL), old);
  world_user_json(sb->w, sb->user, &json);
  buf_printf(&json, "},\"new_chat_member\":{\"status\":\"%s\",\"user\":", new);
  world_user_json(sb->w, sb->user, &json);
  buf_append_str(&json, "}}");
  push(sb, "chat_member", json.data);
  buf_free(&json);
}

static bool is_member(const struct sbx_chat *c, const struct sbx_user *u) {
  for (size_t i = 0; i < c->nmembers; i++)
    if (c->members[i] == u->id) return true;
  return false;
}

/* :join, :leave, :request: the user enters, leaves or asks to join this
 * group. */
static int membership(struct sandbox *sb, const char *what, struct buf *err) {
  if (sb->chat->type != SBX_GROUP) {
    buf_printf(err, ":%s works in a group (:group NAME first)", what);
    return -1;
  }
  bool member = is_member(sb->chat, sb->user);
  if (strcmp(what, "join") == 0) {
    if (member) {
      buf_printf(err, "%s is in %s already", sb->user->first_name, sb->chat->title);
      return -1;
    }
    member_update(sb, "left", "member");
    ensure_member(sb);
  } else if (strcmp(what, "leave") == 0) {
    if (!member) {
      buf_printf(err, "%s is not in %s", sb->user->first_name, sb->chat->title);
      return -1;
    }
    for (size_t i = 0; i < sb->chat->nmembers; i++) {
      if (sb->chat->members[i] == sb->user->id) {
        sb->chat->members[i] = sb->chat->members[--sb->chat->nmembers];
        break;
      }
    }
    member_update(sb, "member", "left");
    struct sbx_message *m = world_add_message(sb->w, sb->chat, sb->user);
    struct buf left = BUF_INIT;
    buf_append_str(&left, "\"left_chat_member\":");
    world_user_json(sb->w, sb->user, &left);
    m->service = buf_steal(&left, NULL);
    emit(sb, false, "%s left %s", sb->user->first_name, sb->chat->title);
    push_message(sb, m, "message");
  } else {
    struct buf json = BUF_INIT;
    buf_append_str(&json, "{\"chat\":");
    world_chat_json(sb->chat, &json);
    buf_append_str(&json, ",\"from\":");
    world_user_json(sb->w, sb->user, &json);
    buf_printf(&json, ",\"user_chat_id\":%lld,\"date\":%lld}",
               (long long)sb->user->id, (long long)time(NULL));
    emit(sb, false, "%s asks to join %s", sb->user->first_name, sb->chat->title);
    push(sb, "chat_join_request", json.data);
    buf_free(&json);
  }
  return 0;
}

/* :webapp DATA: what a Web App opened from a keyboard button sends. */
static int webapp(struct sandbox *sb, const char *data) {
  ensure_member(sb);
  struct sbx_message *m = world_add_message(sb->w, sb->chat, sb->user);
  struct buf service = BUF_INIT;
  buf_append_str(&service, "\"web_app_data\":{\"data\":");
  json_write_string(&service, data, strlen(data));
  buf_append_str(&service, ",\"button_text\":\"Web App\"}");
  m->service = buf_steal(&service, NULL);
  emit(sb, false, "%s's Web App sent: %s", sb->user->first_name, data);
  push_message(sb, m, "message");
  return 0;
}

#define BUSINESS_CONNECTION "sandbox-business-1"

/* :business TEXT: a message to the business account that connected the
 * bot (the user's own), announced once by a business_connection update. */
static int business(struct sandbox *sb, const char *text) {
  struct sbx_chat *chat = world_private_chat(sb->w, sb->user);
  if (!sb->business_connected) {
    sb->business_connected = true;
    struct buf json = BUF_INIT;
    buf_append_str(&json, "{\"id\":\"" BUSINESS_CONNECTION "\",\"user\":");
    world_user_json(sb->w, sb->user, &json);
    buf_printf(&json, ",\"user_chat_id\":%lld,\"date\":%lld,\"is_enabled\":true,"
               "\"rights\":{\"can_reply\":true}}", (long long)sb->user->id,
               (long long)time(NULL));
    emit(sb, false, "-- %s connected the bot to their business account",
         sb->user->first_name);
    push(sb, "business_connection", json.data);
    buf_free(&json);
  }
  struct sbx_message *m = world_add_message(sb->w, chat, sb->user);
  m->text = xstrdup(text);
  m->service = xstrdup("\"business_connection_id\":\"" BUSINESS_CONNECTION "\"");
  struct buf ents = BUF_INIT;
  if (world_text_entities(text, &ents)) m->entities = buf_steal(&ents, NULL);
  buf_free(&ents);
  struct buf head = BUF_INIT;
  buf_printf(&head, "%s (business): ", sb->user->first_name);
  emit_text(sb, false, head.data, text);
  buf_free(&head);
  push_message(sb, m, "business_message");
  return 0;
}

static void print_help(struct sandbox *sb) {
  static const char *const lines[] = {
      "Type a message and press Enter: the bot gets it from the current user.",
      "  :click N               press button N of the newest keyboard",
      "  :click MSG:N           press button N of message #MSG",
      "  :user NAME             talk as NAME (created on first use)",
      "  :group NAME            talk in the group NAME (created with the bot in it)",
      "  :private               back to the private chat with the bot",
      "  :photo PATH [caption]  send a photo (a file on disk)",
      "  :document PATH [caption]  send a file",
      "  :location LAT LON      send a location",
      "  :edit TEXT             edit your last message",
      "  :reply MSG TEXT        reply to message #MSG",
      "  :inline TEXT           an inline query (@bot TEXT); :choose N picks result N",
      "  :react EMOJI [MSG]     react to the bot's newest message (or #MSG)",
      "  :vote N                vote for option N of the bot's newest poll",
      "  :pay                   pay the bot's newest invoice",
      "  :join, :leave, :request  enter, leave or ask to join the group",
      "  :webapp DATA           data from a Web App",
      "  :business TEXT         a message to your business account, which the bot serves",
      "  :sleep SECS            wait (for scripts)",
      "  :wait 3h               move the bot's clock on (scheduled jobs due meanwhile run)",
      "  :help                  this list",
      "  :quit or Ctrl-D        stop the bot and leave (Ctrl-C works too)",
      NULL};
  for (const char *const *l = lines; *l; l++) emit(sb, false, "%s", *l);
}

static void begin_quit(struct sandbox *sb, int status);

/* "90s", "10m", "1h30m", "2d", or a number of seconds -> milliseconds, or
 * -1. */
static int64_t parse_duration(const char *s) {
  char *end;
  double secs = strtod(s, &end);
  if (end != s && *end == '\0') return secs >= 0 ? (int64_t)(secs * 1000) : -1;
  double total = 0;
  const char *p = s;
  if (!*p) return -1;
  while (*p) {
    double v = strtod(p, &end);
    if (end == p || v < 0) return -1;
    p = end;
    if (*p == 'd') total += v * 86400;
    else if (*p == 'h') total += v * 3600;
    else if (*p == 'm') total += v * 60;
    else if (*p == 's') total += v;
    else return -1;
    p++;
  }
  return total <= 366.0 * 86400 * 100 ? (int64_t)(total * 1000) : -1;
}

static void on_clock_moved(void *arg, int64_t now_ms) {
  struct sandbox *sb = arg;
  time_t t = (time_t)(now_ms / 1000);
  struct tm tm;
  char when[40] = "?";
  if (gmtime_r(&t, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", &tm);
  emit(sb, false, "-- the clock moved on: it is now %s", when);
  if (sb->scripted && !sb->quitting) event_active(sb->step_ev, EV_TIMEOUT, 0);
}

/* Runs a ":command" line. Returns 0, 1 when it started a wait (:sleep), 2
 * when the clock moves (:wait; the next step comes when it has), or -1
 * with err set. */
static int run_command(struct sandbox *sb, const char *line, struct buf *err,
                       double *sleep_s) {
  const char *name = line + 1;
  size_t n = strcspn(name, " \t");
  const char *arg = name + n;
  while (*arg == ' ' || *arg == '\t') arg++;
#define IS(word) (n == strlen(word) && strncmp(name, word, n) == 0)
  if (IS("help")) {
    print_help(sb);
  } else if (IS("quit")) {
    begin_quit(sb, 0);
  } else if (IS("click")) {
    return click(sb, arg, err);
  } else if (IS("user")) {
    if (!*arg) {
      buf_append_str(err, "usage: :user NAME");
      return -1;
    }
    sb->user = world_user(sb->w, arg);
    if (sb->chat->type == SBX_PRIVATE) {
      sb->chat = world_private_chat(sb->w, sb->user);
      emit(sb, false, "-- now %s, in a private chat with the bot", arg);
    } else {
      emit(sb, false, "-- now %s, in %s", arg, sb->chat->title);
      ensure_member(sb);
    }
  } else if (IS("group")) {
    if (!*arg) {
      buf_append_str(err, "usage: :group NAME");
      return -1;
    }
    switch_to_group(sb, arg);
  } else if (IS("private")) {
    sb->chat = world_private_chat(sb->w, sb->user);
    emit(sb, false, "-- back in %s's private chat with the bot",
         sb->user->first_name);
  } else if (IS("photo") || IS("document")) {
    return send_file(sb, IS("photo") ? "photo" : "document", arg, err);
  } else if (IS("location")) {
    double lat, lon;
    char tail;
    /* strtod reads "nan" and "inf", which JSON cannot carry. */
    if (sscanf(arg, "%lf %lf %c", &lat, &lon, &tail) != 2 ||
        !(lat >= -90 && lat <= 90) || !(lon >= -180 && lon <= 180)) {
      buf_append_str(err, "usage: :location LAT LON (latitude -90 to 90, "
                          "longitude -180 to 180)");
      return -1;
    }
    char shown[96];
    snprintf(shown, sizeof shown, "[location %.4f, %.4f]", lat, lon);
    user_line(sb, shown);
    send_location(sb, lat, lon);
  } else if (IS("edit")) {
    struct sbx_message *m = last_user_message(sb);
    if (!m || !*arg) {
      buf_append_str(err, m ? "usage: :edit TEXT" : "you have no message to edit "
                                                   "in this chat");
      return -1;
    }
    free(m->text);
    free(m->entities);
    m->text = xstrdup(arg);
    m->entities = NULL;
    struct buf ents = BUF_INIT;
    if (world_text_entities(arg, &ents)) m->entities = buf_steal(&ents, NULL);
    buf_free(&ents);
    m->edit_date = (int64_t)time(NULL);
    struct buf head = BUF_INIT;
    buf_printf(&head, "%s edited #%lld: ", sb->user->first_name, (long long)m->id);
    emit_text(sb, false, head.data, arg);
    buf_free(&head);
    push_message(sb, m, "edited_message");
  } else if (IS("reply")) {
    long long id;
    int used = 0;
    if (sscanf(arg, "%lld %n", &id, &used) != 1 || !arg[used]) {
      buf_append_str(err, "usage: :reply MSG TEXT");
      return -1;
    }
    if (!world_message(sb->chat, id)) {
      buf_printf(err, "there is no message #%lld in this chat", id);
      return -1;
    }
    char head[64];
    snprintf(head, sizeof head, "%s (reply to #%lld): ", sb->user->first_name, id);
    emit_text(sb, false, head, arg + used);
    say(sb, arg + used, id);
  } else if (IS("inline")) {
    return inline_query(sb, arg);
  } else if (IS("choose")) {
    return choose(sb, arg, err);
  } else if (IS("react")) {
    return react(sb, arg, err);
  } else if (IS("vote")) {
    return vote(sb, arg, err);
  } else if (IS("pay")) {
    return pay(sb, err);
  } else if (IS("join") || IS("leave") || IS("request")) {
    char what[8];
    snprintf(what, sizeof what, "%.*s", (int)n, name);
    return membership(sb, what, err);
  } else if (IS("webapp")) {
    if (!*arg) {
      buf_append_str(err, "usage: :webapp DATA");
      return -1;
    }
    return webapp(sb, arg);
  } else if (IS("business")) {
    if (!*arg) {
      buf_append_str(err, "usage: :business TEXT");
      return -1;
    }
    return business(sb, arg);
  } else if (IS("wait")) {
    int64_t ms = parse_duration(arg);
    if (ms < 0) {
      buf_append_str(err, "usage: :wait DURATION (such as 90s, 10m, 1h30m, "
                          "2d, or seconds)");
      return -1;
    }
    if (!sb->hooks.advance_clock) {
      buf_append_str(err, ":wait: this bot's clock cannot move");
      return -1;
    }
    sb->hooks.advance_clock(sb->ud, ms, on_clock_moved, sb);
    return 2;
  } else if (IS("sleep") || IS("timeout")) {
    char *end;
    double secs = strtod(arg, &end);
    if (end == arg || *end || !(secs >= 0 && secs <= 3600)) {   /* NaN */
      buf_printf(err, "usage: :%.*s SECONDS", (int)n, name);
      return -1;
    }
    if (IS("timeout")) {
      sb->timeout_s = secs;
    } else {
      *sleep_s = secs;
      return 1;
    }
  } else {
    buf_printf(err, "unknown command :%.*s (see :help)", (int)n, name);
    return -1;
  }
#undef IS
  return 0;
}

/* --- ending ---------------------------------------------------------------- */

/* Hands over to main once the bot has fetched what was queued for it
 * (a bot that is still starting gets DRAIN_MAX_MS to ask). */
static void on_drain(evutil_socket_t fd, short what, void *arg) {
  struct sandbox *sb = arg;
  /* A failed transcript has nothing more to hand over. */
  bool waited_enough = sb->quit_status != 0 ||
                       clock_now_ms() - sb->drain_started_ms >= DRAIN_MAX_MS;
  if ((!sandbox_api_polled(sb->api) || world_undelivered(sb->w) > 0) &&
      !waited_enough) {
    struct timeval tv = {0, DRAIN_CHECK_MS * 1000};
    evtimer_add(sb->drain_timer, &tv);
    return;
  }
  sb->hooks.quit(sb->ud, sb->quit_status);
}

static void begin_quit(struct sandbox *sb, int status) {
  if (sb->quitting) return;
  sb->quitting = true;
  sb->quit_status = status;
  if (sb->stdin_ev) event_del(sb->stdin_ev);
  term_stop(sb->term);
  sb->drain_started_ms = clock_now_ms();
  event_active(sb->drain_timer, EV_TIMEOUT, 0);
}

/* --- the terminal ---------------------------------------------------------- */

static void handle_line(struct sandbox *sb, char *line) {
  size_t len = strlen(line);
  while (len && (line[len - 1] == '\r' || line[len - 1] == '\n')) line[--len] = '\0';
  if (sb->rewrite_echo) fputs("\033[1A\r\033[2K", stdout);   /* over the echo */
  if (len == 0) return;
  if (line[0] == ':' && line[1] != ':' && line[1] != ' ' && line[1]) {
    struct buf err = BUF_INIT;
    double ignored;
    if (sb->rewrite_echo) emit(sb, false, "%s", line);
    if (run_command(sb, line, &err, &ignored) < 0)
      emit(sb, false, "sandbox: %s", err.data);
    buf_free(&err);
    update_prompt(sb);   /* :user, :group and :private change it */
    return;
  }
  user_line(sb, line);
  say(sb, line, 0);
}

static void read_input(struct sandbox *sb) {
  char chunk[4096];
  ssize_t n = read(STDIN_FILENO, chunk, sizeof chunk);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n > 0) {
    buf_append(&sb->input, chunk, (size_t)n);
    char *start = sb->input.data, *nl;
    while (!sb->quitting && (nl = memchr(start, '\n',
                                         sb->input.len - (size_t)(start - sb->input.data)))) {
      *nl = '\0';
      handle_line(sb, start);
      start = nl + 1;
    }
    size_t rest = sb->input.len - (size_t)(start - sb->input.data);
    memmove(sb->input.data, start, rest);
    sb->input.len = rest;
    sb->input.data[rest] = '\0';
    if (!sb->stdin_pollable && !sb->quitting) event_active(sb->stdin_ev, EV_READ, 0);
    return;
  }
  /* End of input (Ctrl-D) or an error: what is left is a last line. */
  if (sb->input.len && !sb->quitting) handle_line(sb, sb->input.data);
  buf_reset(&sb->input);
  if (sb->rewrite_echo) emit(sb, false, "-- leaving the sandbox");
  begin_quit(sb, 0);
}

static void on_stdin(evutil_socket_t fd, short what, void *arg) {
  read_input(arg);
}

/* The line editor's events. */
static void on_term_line(void *ud, const char *line) {
  char *copy = xstrdup(line);
  handle_line(ud, copy);
  free(copy);
}

static void on_term_eof(void *ud) {
  struct sandbox *sb = ud;
  emit(sb, false, "-- leaving the sandbox");
  begin_quit(sb, 0);
}

/* Log lines and print() while the editor shows its prompt: the input line
 * is cleared before and drawn again after; log lines are dimmed, so the
 * chat stands apart from what tghost says about it. */
static void screen_before(void *ud, bool log_line) {
  struct sandbox *sb = ud;
  term_hide(sb->term);
  if (log_line && sb->dim_logs) fputs("\033[2m", stderr);
}

static void screen_after(void *ud, bool log_line) {
  struct sandbox *sb = ud;
  if (log_line && sb->dim_logs) fputs("\033[0m", stderr);
  term_show(sb->term);
}

/* --- scripts --------------------------------------------------------------- */

static void script_failed(struct sandbox *sb, const struct script_step *st,
                          const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void script_failed(struct sandbox *sb, const struct script_step *st,
                          const char *fmt, ...) {
  struct buf msg = BUF_INIT;
  va_list ap;
  va_start(ap, fmt);
  buf_vprintf(&msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "tghost: %s:%d: %s\n", sb->script.path, st->line, msg.data);
  buf_free(&msg);
  if (st->kind == STEP_EXPECT) {
    if (sb->nseen == 0) {
      fprintf(stderr, "  the bot printed nothing since the previous "
                      "expectation\n");
    } else {
      fprintf(stderr, "  what the bot printed since the previous expectation:\n");
      for (size_t i = 0; i < sb->nseen; i++) fprintf(stderr, "    %s\n", sb->seen[i]);
    }
    if (!sandbox_api_polled(sb->api))
      fprintf(stderr, "  the bot never asked for updates: does the script call "
                      "run(bot)?\n");
  }
  sb->waiting = false;
  sb->step = sb->script.nsteps;
  begin_quit(sb, 1);
}

static void drop_seen(struct sandbox *sb, size_t through) {
  for (size_t i = 0; i <= through; i++) free(sb->seen[i]);
  memmove(sb->seen, sb->seen + through + 1,
          (sb->nseen - through - 1) * sizeof *sb->seen);
  sb->nseen -= through + 1;
}

static void expectation_met(struct sandbox *sb) {
  sb->waiting = false;
  evtimer_del(sb->expect_timer);
  sb->met++;
  sb->step++;
  event_active(sb->step_ev, EV_TIMEOUT, 0);
}

static void on_bot_line(struct sandbox *sb, const char *line) {
  if (!sb->scripted || sb->quitting) return;
  if (sb->nseen == MAX_SEEN) drop_seen(sb, 0);
  sb->seen = xrealloc(sb->seen, (sb->nseen + 1) * sizeof *sb->seen);
  sb->seen[sb->nseen++] = xstrdup(line);
  if (!sb->waiting) return;
  if (strstr(line, sb->script.steps[sb->step].text)) {
    drop_seen(sb, sb->nseen - 1);
    expectation_met(sb);
  }
}

static void on_expect_timeout(evutil_socket_t fd, short what, void *arg) {
  struct sandbox *sb = arg;
  if (!sb->waiting) return;
  const struct script_step *st = &sb->script.steps[sb->step];
  script_failed(sb, st, "the bot did not say \"%s\" within %g s", st->text,
                sb->timeout_s);
}

static void run_steps(evutil_socket_t fd, short what, void *arg) {
  struct sandbox *sb = arg;
  while (!sb->quitting && !sb->waiting && sb->step < sb->script.nsteps) {
    const struct script_step *st = &sb->script.steps[sb->step];
    if (st->kind != STEP_EXPECT && !sandbox_api_polled(sb->api) &&
        sb->poll_waited_ms < (long)(sb->timeout_s * 1000)) {
      /* Telegram keeps only the updates the bot's allowed_updates ask
       * for, which the bot names in its first getUpdates: a line said or
       * a :join before it (a chat_member update) would be dropped. A bot
       * that never polls fails at the first expectation, as before. */
      struct timeval tv = {0, 10 * 1000};
      sb->poll_waited_ms += 10;
      evtimer_add(sb->step_ev, &tv);
      return;
    }
    if (st->kind == STEP_SAY) {
      user_line(sb, st->text);
      say(sb, st->text, 0);
      sb->step++;
    } else if (st->kind == STEP_EXPECT) {
      for (size_t i = 0; i < sb->nseen; i++) {
        if (strstr(sb->seen[i], st->text)) {
          drop_seen(sb, i);
          sb->met++;
          sb->step++;
          goto next;
        }
      }
      sb->waiting = true;
      long ms = (long)(sb->timeout_s * 1000);
      struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
      evtimer_add(sb->expect_timer, &tv);
      return;
    } else {
      struct buf err = BUF_INIT;
      double sleep_s = 0;
      int rc = run_command(sb, st->text, &err, &sleep_s);
      if (rc < 0) {
        script_failed(sb, st, "%s", err.data);
        buf_free(&err);
        return;
      }
      buf_free(&err);
      sb->step++;
      if (rc == 2) return;   /* on_clock_moved brings us back */
      if (rc == 1) {
        long ms = (long)(sleep_s * 1000);
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        evtimer_add(sb->step_ev, &tv);
        return;
      }
    }
  next:;
  }
  if (!sb->quitting && sb->step >= sb->script.nsteps) {
    emit(sb, false, "-- %s: the bot met all %d expectation(s)", sb->script.path,
         sb->met);
    begin_quit(sb, 0);
  }
}

/* The first expectation at or after step `from`, or NULL. */
static const struct script_step *next_expectation(const struct script *s,
                                                  size_t from) {
  for (size_t i = from; i < s->nsteps; i++)
    if (s->steps[i].kind == STEP_EXPECT) return &s->steps[i];
  return NULL;
}

int sandbox_exit_status(struct sandbox *sb) {
  if (!sb->scripted || sb->quit_status != 0) return sb->quit_status;
  /* The bot stopped (os.exit, its handle's stop(), a :quit in the
   * transcript) with expectations still ahead: they were never checked. */
  const struct script_step *st = next_expectation(&sb->script, sb->step);
  if (!st) return 0;
  fprintf(stderr, "tghost: %s:%d: the bot stopped before this expectation "
          "(\"%s\") was reached\n", sb->script.path, st->line, st->text);
  return 1;
}

/* --- lifecycle ------------------------------------------------------------- */

struct sandbox *sandbox_new(struct config *cfg, struct buf *err) {
  struct sandbox *sb = xcalloc(1, sizeof *sb);
  sb->timeout_s = DEFAULT_TIMEOUT_S;
  sb->query_timeout_ms = QUERY_TIMEOUT_MS;
  const char *answer_timeout = getenv("TGHOST_SANDBOX_ANSWER_TIMEOUT");
  double secs = answer_timeout ? strtod(answer_timeout, NULL) : 0;
  if (secs > 0 && secs < 3600) sb->query_timeout_ms = (long)(secs * 1000);
  sb->bot_script = xstrdup(cfg->script);
  if (cfg->sandbox_script) {
    if (script_load(cfg->sandbox_script, &sb->script, err) != 0) {
      sandbox_free(sb);
      return NULL;
    }
    if (!next_expectation(&sb->script, 0)) {
      buf_printf(err, "%s has no expectation (a line '< text' the bot must "
                 "say), so it would pass whatever the bot does",
                 cfg->sandbox_script);
      sandbox_free(sb);
      return NULL;
    }
    sb->scripted = true;
  }
  /* Before anything opens a descriptor: a closed stdin must not be taken
   * for the first socket. */
  struct stat st;
  sb->stdin_ok = !sb->scripted && fstat(STDIN_FILENO, &st) == 0;
  sb->stdin_pollable = sb->stdin_ok && (isatty(STDIN_FILENO) ||
                                        S_ISFIFO(st.st_mode) ||
                                        S_ISSOCK(st.st_mode));
  sb->rewrite_echo = sb->stdin_ok && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
  sb->w = world_new();
  sb->api = sandbox_api_new(sb->w, err);
  if (!sb->api) {
    sandbox_free(sb);
    return NULL;
  }
  sb->user = world_user(sb->w, DEFAULT_USER);
  sb->chat = world_private_chat(sb->w, sb->user);
  /* The bot talks to the emulator, with the emulator's token: a real token
   * from BOT_TOKEN or --token-file never leaves the process. */
  free(cfg->api_root);
  cfg->api_root = xstrdup(sandbox_api_url(sb->api));
  if (cfg->token) {
    memset(cfg->token, 0, strlen(cfg->token));
    free(cfg->token);
  }
  cfg->token = xstrdup(sandbox_api_token());
  log_add_secret(cfg->token);
  return sb;
}

int sandbox_start(struct sandbox *sb, struct event_base *base,
                  const struct sandbox_hooks *hooks, void *ud,
                  struct buf *err) {
  sb->base = base;
  sb->hooks = *hooks;
  sb->ud = ud;
  static const struct sandbox_api_events events = {
      on_sent, on_edited, on_deleted, on_action, on_answered, on_note,
      on_inline_answered, on_pre_checkout_answered};
  if (sandbox_api_start(sb->api, base, &events, sb, err) != 0) return -1;
  sb->drain_timer = evtimer_new(base, on_drain, sb);
  sb->query_timer = event_new(base, -1, EV_PERSIST, on_query_timer, sb);
  if (sb->scripted) {
    sb->step_ev = evtimer_new(base, run_steps, sb);
    sb->expect_timer = evtimer_new(base, on_expect_timeout, sb);
    event_active(sb->step_ev, EV_TIMEOUT, 0);
    return 0;
  }
  emit(sb, false, "tghost sandbox: %s talks to %s in a private chat (no token, "
       "no network).", sb->user->first_name, sb->bot_script);
  emit(sb, false, "Type a message and press Enter; :help lists the commands; "
       "Ctrl-D leaves.");
  if (!sb->stdin_ok) {
    begin_quit(sb, 0);
    return 0;
  }
  static const struct term_events term_events = {on_term_line, on_term_eof};
  struct buf prompt = BUF_INIT;
  prompt_for(sb, &prompt);
  sb->term = term_new(base, prompt.data, &term_events, sb);
  buf_free(&prompt);
  if (sb->term) {
    /* NO_COLOR (no-color.org): no dimming either. */
    const char *no_color = getenv("NO_COLOR");
    sb->dim_logs = isatty(STDERR_FILENO) && !(no_color && *no_color);
    static struct log_screen screen = {screen_before, screen_after, NULL};
    screen.ud = sb;
    log_set_screen(&screen);
  } else if (sb->stdin_pollable) {
    sb->stdin_ev = event_new(base, STDIN_FILENO, EV_READ | EV_PERSIST, on_stdin, sb);
    event_add(sb->stdin_ev, NULL);
  } else {
    /* A regular file or /dev/null: epoll cannot watch it, and reading it
     * never waits. Read a chunk per turn of the loop. */
    sb->stdin_ev = event_new(base, -1, 0, on_stdin, sb);
    event_active(sb->stdin_ev, EV_READ, 0);
  }
  return 0;
}

void sandbox_update_unhandled(struct sandbox *sb, int64_t update_id,
                              const char *type) {
  emit(sb, false, "(no handler took this %s: update %lld ended unhandled)",
       type, (long long)update_id);
}

void sandbox_free(struct sandbox *sb) {
  if (!sb) return;
  if (sb->term) {
    log_set_screen(NULL);
    term_free(sb->term);
  }
  if (sb->stdin_ev) event_free(sb->stdin_ev);
  if (sb->drain_timer) event_free(sb->drain_timer);
  if (sb->query_timer) event_free(sb->query_timer);
  if (sb->step_ev) event_free(sb->step_ev);
  if (sb->expect_timer) event_free(sb->expect_timer);
  sandbox_api_free(sb->api);
  world_free(sb->w);
  script_free(&sb->script);
  for (size_t i = 0; i < sb->nseen; i++) free(sb->seen[i]);
  free(sb->seen);
  free(sb->queries);
  free(sb->inline_results);
  free(sb->inline_query);
  free(sb->bot_script);
  buf_free(&sb->input);
  free(sb);
}
