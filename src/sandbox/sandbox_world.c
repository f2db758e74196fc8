#include "sandbox/sandbox_world.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/json.h"

#define BOT_ID 7000000001LL
#define FIRST_USER_ID 100000001LL
#define FIRST_GROUP_ID -4000000001LL

struct sbx_update {
  int64_t id;
  char *json;
  bool delivered;
};

struct sbx_world {
  struct sbx_user bot;
  struct sbx_user **users;
  size_t nusers;
  struct sbx_chat **chats;
  size_t nchats;
  struct sbx_file **files;
  size_t nfiles;
  struct sbx_query **queries;
  size_t nqueries;
  struct sbx_update *updates;   /* [first, nupdates) are queued */
  size_t first, nupdates, updates_cap;
  int64_t next_update_id;
  int64_t next_group_id;
  unsigned file_counter;
  char **allowed;               /* NULL: Telegram's default */
  size_t nallowed;
};

/* --- small helpers ------------------------------------------------------- */

static void *grow(void *p, size_t n, size_t size) {
  /* Arrays here grow one element at a time and stay small. */
  return xrealloc(p, (n + 1) * size);
}

static void append_json_string(struct buf *out, const char *s) {
  json_write_string(out, s, strlen(s));
}

void world_format_size(size_t bytes, char *out, size_t n) {
  if (bytes < 1024) snprintf(out, n, "%zu bytes", bytes);
  else if (bytes < 1024 * 1024) snprintf(out, n, "%.1f KiB", bytes / 1024.0);
  else snprintf(out, n, "%.1f MiB", bytes / (1024.0 * 1024.0));
}

/* --- world, users, chats ------------------------------------------------- */

struct sbx_world *world_new(void) {
  struct sbx_world *w = xcalloc(1, sizeof *w);
  w->bot.id = BOT_ID;
  w->bot.first_name = xstrdup("Sandbox Bot");
  w->bot.username = xstrdup("sandbox_bot");
  w->next_update_id = 1;
  w->next_group_id = FIRST_GROUP_ID;
  return w;
}

static void message_free(struct sbx_message *m) {
  if (!m) return;
  free(m->text);
  free(m->entities);
  free(m->media);
  free(m->media_summary);
  free(m->markup);
  free(m->service);
  free(m->payload);
  free(m);
}

void world_free(struct sbx_world *w) {
  if (!w) return;
  for (size_t i = 0; i < w->nchats; i++) {
    struct sbx_chat *c = w->chats[i];
    for (size_t j = 0; j < c->nmessages; j++) message_free(c->messages[j]);
    free(c->messages);
    free(c->members);
    free(c->title);
    free(c->reply_keyboard);
    free(c);
  }
  free(w->chats);
  for (size_t i = 0; i < w->nusers; i++) {
    free(w->users[i]->first_name);
    free(w->users[i]->username);
    free(w->users[i]);
  }
  free(w->users);
  for (size_t i = 0; i < w->nfiles; i++) {
    struct sbx_file *f = w->files[i];
    free(f->file_id);
    free(f->unique_id);
    free(f->name);
    free(f->kind);
    free(f->path);
    free(f->data);
    free(f);
  }
  free(w->files);
  for (size_t i = 0; i < w->nqueries; i++) {
    free(w->queries[i]->data);
    free(w->queries[i]->button);
    free(w->queries[i]);
  }
  free(w->queries);
  for (size_t i = w->first; i < w->nupdates; i++) free(w->updates[i].json);
  free(w->updates);
  for (size_t i = 0; i < w->nallowed; i++) free(w->allowed[i]);
  free(w->allowed);
  free(w->bot.first_name);
  free(w->bot.username);
  free(w);
}

const struct sbx_user *world_bot(const struct sbx_world *w) { return &w->bot; }

void world_user_json(const struct sbx_world *w, const struct sbx_user *u,
                     struct buf *out) {
  bool is_bot = u == &w->bot;
  buf_printf(out, "{\"id\":%lld,\"is_bot\":%s,\"first_name\":", (long long)u->id,
             is_bot ? "true" : "false");
  append_json_string(out, u->first_name);
  buf_append_str(out, ",\"username\":");
  append_json_string(out, u->username);
  if (!is_bot) buf_append_str(out, ",\"language_code\":\"en\"");
  buf_append_char(out, '}');
}

void world_chat_json(const struct sbx_chat *c, struct buf *out) {
  buf_printf(out, "{\"id\":%lld,", (long long)c->id);
  if (c->type == SBX_PRIVATE) {
    buf_append_str(out, "\"first_name\":");
    append_json_string(out, c->user->first_name);
    buf_append_str(out, ",\"username\":");
    append_json_string(out, c->user->username);
    buf_append_str(out, ",\"type\":\"private\"}");
  } else {
    buf_append_str(out, "\"title\":");
    append_json_string(out, c->title);
    buf_append_str(out, ",\"type\":\"group\"}");
  }
}

struct sbx_user *world_user(struct sbx_world *w, const char *name) {
  for (size_t i = 0; i < w->nusers; i++)
    if (strcmp(w->users[i]->first_name, name) == 0) return w->users[i];
  struct sbx_user *u = xcalloc(1, sizeof *u);
  u->id = FIRST_USER_ID + (int64_t)w->nusers;
  u->first_name = xstrdup(name);
  /* A username from the name: lower-case letters, digits and '_'. */
  struct buf un = BUF_INIT;
  for (const char *p = name; *p; p++) {
    unsigned char ch = (unsigned char)*p;
    if (isalnum(ch)) buf_append_char(&un, (char)tolower(ch));
    else if (ch == ' ' || ch == '_') buf_append_char(&un, '_');
  }
  if (un.len < 3) buf_printf(&un, "user%lld", (long long)u->id);
  u->username = buf_steal(&un, NULL);
  w->users = grow(w->users, w->nusers, sizeof *w->users);
  w->users[w->nusers++] = u;
  return u;
}

static struct sbx_chat *add_chat(struct sbx_world *w) {
  struct sbx_chat *c = xcalloc(1, sizeof *c);
  w->chats = grow(w->chats, w->nchats, sizeof *w->chats);
  w->chats[w->nchats++] = c;
  return c;
}

struct sbx_chat *world_private_chat(struct sbx_world *w, struct sbx_user *u) {
  struct sbx_chat *c = world_chat(w, u->id);
  if (c) return c;
  c = add_chat(w);
  c->id = u->id;
  c->type = SBX_PRIVATE;
  c->user = u;
  return c;
}

struct sbx_chat *world_group(struct sbx_world *w, const char *title,
                             bool *created) {
  *created = false;
  for (size_t i = 0; i < w->nchats; i++)
    if (w->chats[i]->type == SBX_GROUP && strcmp(w->chats[i]->title, title) == 0)
      return w->chats[i];
  struct sbx_chat *c = add_chat(w);
  c->id = w->next_group_id--;
  c->type = SBX_GROUP;
  c->title = xstrdup(title);
  *created = true;
  return c;
}

struct sbx_chat *world_chat(struct sbx_world *w, int64_t id) {
  for (size_t i = 0; i < w->nchats; i++)
    if (w->chats[i]->id == id) return w->chats[i];
  return NULL;
}

bool world_join(struct sbx_chat *c, const struct sbx_user *u) {
  for (size_t i = 0; i < c->nmembers; i++)
    if (c->members[i] == u->id) return false;
  c->members = grow(c->members, c->nmembers, sizeof *c->members);
  c->members[c->nmembers++] = u->id;
  return true;
}

/* --- messages ------------------------------------------------------------ */

struct sbx_message *world_add_message(struct sbx_world *w, struct sbx_chat *c,
                                      const struct sbx_user *from) {
  (void)w;
  if (c->nmessages == c->cap) {
    c->cap = c->cap ? c->cap * 2 : 16;
    c->messages = xrealloc(c->messages, c->cap * sizeof *c->messages);
  }
  struct sbx_message *m = xcalloc(1, sizeof *m);
  m->id = (int64_t)c->nmessages + 1;
  m->chat = c;
  m->from = from;
  m->date = (int64_t)time(NULL);
  c->messages[c->nmessages++] = m;
  return m;
}

struct sbx_message *world_message(struct sbx_chat *c, int64_t id) {
  if (id < 1 || (uint64_t)id > c->nmessages) return NULL;
  struct sbx_message *m = c->messages[id - 1];
  return m->deleted ? NULL : m;
}

static void message_json(const struct sbx_world *w, const struct sbx_message *m,
                         struct buf *out, int depth) {
  buf_printf(out, "{\"message_id\":%lld,\"from\":", (long long)m->id);
  world_user_json(w, m->from ? m->from : &w->bot, out);
  buf_append_str(out, ",\"chat\":");
  world_chat_json(m->chat, out);
  buf_printf(out, ",\"date\":%lld", (long long)m->date);
  if (m->edit_date) buf_printf(out, ",\"edit_date\":%lld", (long long)m->edit_date);
  if (m->reply_to && depth == 0) {
    struct sbx_message *r = world_message(m->chat, m->reply_to);
    if (r) {
      buf_append_str(out, ",\"reply_to_message\":");
      message_json(w, r, out, depth + 1);
    }
  }
  if (m->media) {
    buf_printf(out, ",%s", m->media);
    if (m->text) {
      buf_append_str(out, ",\"caption\":");
      append_json_string(out, m->text);
    }
    if (m->entities) buf_printf(out, ",\"caption_entities\":%s", m->entities);
  } else if (m->text) {
    buf_append_str(out, ",\"text\":");
    append_json_string(out, m->text);
    if (m->entities) buf_printf(out, ",\"entities\":%s", m->entities);
  }
  if (m->service) buf_printf(out, ",%s", m->service);
  /* Only inline keyboards stay attached to a message. */
  if (m->markup && strstr(m->markup, "\"inline_keyboard\""))
    buf_printf(out, ",\"reply_markup\":%s", m->markup);
  buf_append_char(out, '}');
}

void world_message_json(const struct sbx_world *w, const struct sbx_message *m,
                        struct buf *out) {
  message_json(w, m, out, 0);
}

/* --- entities ------------------------------------------------------------ */

/* UTF-16 code units of the UTF-8 bytes [s, s + n). */
static size_t utf16_units(const char *s, size_t n) {
  size_t units = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c & 0xC0) == 0x80) continue;          /* continuation byte */
    units += c >= 0xF0 ? 2 : 1;                /* 4-byte: a surrogate pair */
  }
  return units;
}

size_t world_utf16_length(const char *s) { return utf16_units(s, strlen(s)); }

static bool word_char(char c) {
  return isalnum((unsigned char)c) || c == '_';
}

bool world_text_entities(const char *text, struct buf *out) {
  size_t n = strlen(text), count = 0;
  struct buf list = BUF_INIT;
  for (size_t i = 0; i < n;) {
    bool at_word_start = i == 0 || isspace((unsigned char)text[i - 1]);
    const char *type = NULL;
    size_t len = 0;
    if (at_word_start && text[i] == '/' && i + 1 < n && word_char(text[i + 1])) {
      len = 1;
      while (i + len < n && word_char(text[i + len])) len++;
      if (i + len < n && text[i + len] == '@') {   /* /cmd@botname */
        size_t k = len + 1;
        while (i + k < n && word_char(text[i + k])) k++;
        if (k > len + 1) len = k;
      }
      type = "bot_command";
    } else if (at_word_start && (text[i] == '@' || text[i] == '#') &&
               i + 1 < n && word_char(text[i + 1])) {
      len = 1;
      while (i + len < n && word_char(text[i + len])) len++;
      type = text[i] == '@' ? "mention" : "hashtag";
    } else if (at_word_start && (strncmp(text + i, "http://", 7) == 0 ||
                                 strncmp(text + i, "https://", 8) == 0)) {
      while (i + len < n && !isspace((unsigned char)text[i + len])) len++;
      type = "url";
    }
    if (!type) {
      i++;
      continue;
    }
    buf_printf(&list, "%s{\"offset\":%zu,\"length\":%zu,\"type\":\"%s\"}",
               count++ ? "," : "", utf16_units(text, i),
               utf16_units(text + i, len), type);
    i += len;
  }
  if (count) buf_printf(out, "[%s]", list.data);
  buf_free(&list);
  return count > 0;
}

/* --- files and callback queries ------------------------------------------ */

struct sbx_file *world_add_file(struct sbx_world *w, const char *kind,
                                const char *name, size_t size,
                                const char *path, const char *data) {
  struct sbx_file *f = xcalloc(1, sizeof *f);
  unsigned n = ++w->file_counter;
  char id[64];
  snprintf(id, sizeof id, "SBX%s%04u", kind, n);
  f->file_id = xstrdup(id);
  snprintf(id, sizeof id, "sbxu%04u", n);
  f->unique_id = xstrdup(id);
  f->kind = xstrdup(kind);
  f->name = xstrdup(name && *name ? name : "file");
  f->size = size;
  if (path) f->path = xstrdup(path);
  if (data && size <= SBX_MAX_KEPT_FILE) {
    f->data = xmalloc(size ? size : 1);
    memcpy(f->data, data, size);
    f->has_data = true;
  }
  w->files = grow(w->files, w->nfiles, sizeof *w->files);
  w->files[w->nfiles++] = f;
  return f;
}

struct sbx_file *world_file(struct sbx_world *w, const char *file_id) {
  for (size_t i = 0; i < w->nfiles; i++)
    if (strcmp(w->files[i]->file_id, file_id) == 0) return w->files[i];
  return NULL;
}

struct sbx_query *world_add_query(struct sbx_world *w,
                                  const struct sbx_message *m,
                                  const struct sbx_user *from,
                                  const char *data, const char *button) {
  struct sbx_query *q = xcalloc(1, sizeof *q);
  snprintf(q->id, sizeof q->id, "%zu%lld", w->nqueries + 1,
           (long long)from->id);
  q->chat_id = m->chat->id;
  q->message_id = m->id;
  q->from = from;
  q->data = xstrdup(data);
  q->button = xstrdup(button);
  w->queries = grow(w->queries, w->nqueries, sizeof *w->queries);
  w->queries[w->nqueries++] = q;
  return q;
}

struct sbx_query *world_add_other_query(struct sbx_world *w,
                                        enum sbx_query_kind kind,
                                        const struct sbx_message *m,
                                        const struct sbx_user *from,
                                        const char *data) {
  struct sbx_query *q = xcalloc(1, sizeof *q);
  q->kind = kind;
  snprintf(q->id, sizeof q->id, "%zu%lld", w->nqueries + 1, (long long)from->id);
  if (m) {
    q->chat_id = m->chat->id;
    q->message_id = m->id;
  }
  q->from = from;
  q->data = xstrdup(data);
  q->button = xstrdup("");
  w->queries = grow(w->queries, w->nqueries, sizeof *w->queries);
  w->queries[w->nqueries++] = q;
  return q;
}

struct sbx_query *world_query(struct sbx_world *w, const char *id) {
  for (size_t i = 0; i < w->nqueries; i++)
    if (strcmp(w->queries[i]->id, id) == 0) return w->queries[i];
  return NULL;
}

/* --- updates ------------------------------------------------------------- */

void world_set_allowed_updates(struct sbx_world *w, const char *json,
                               size_t len) {
  if (!json) return;
  struct json_reader r;
  json_reader_init(&r, json, len);
  if (!json_array_begin(&r)) return;
  for (size_t i = 0; i < w->nallowed; i++) free(w->allowed[i]);
  free(w->allowed);
  w->allowed = NULL;
  w->nallowed = 0;
  while (json_array_next(&r)) {
    struct json_slice s;
    if (!json_read_string(&r, &s)) break;
    struct buf name = BUF_INIT;
    json_unescape(&s, &name);
    w->allowed = grow(w->allowed, w->nallowed, sizeof *w->allowed);
    w->allowed[w->nallowed++] = buf_steal(&name, NULL);
  }
}

bool world_allows(const struct sbx_world *w, const char *type) {
  if (w->nallowed == 0)   /* Telegram's default leaves these three out */
    return strcmp(type, "chat_member") != 0 &&
           strcmp(type, "message_reaction") != 0 &&
           strcmp(type, "message_reaction_count") != 0;
  for (size_t i = 0; i < w->nallowed; i++)
    if (w->allowed[i] && strcmp(w->allowed[i], type) == 0) return true;
  return false;
}

int64_t world_push_update(struct sbx_world *w, const char *type,
                          const char *object_json) {
  if (!world_allows(w, type)) return 0;
  if (w->first > 0 && w->first == w->nupdates) w->first = w->nupdates = 0;
  if (w->nupdates == w->updates_cap) {
    w->updates_cap = w->updates_cap ? w->updates_cap * 2 : 64;
    w->updates = xrealloc(w->updates, w->updates_cap * sizeof *w->updates);
  }
  struct sbx_update *u = &w->updates[w->nupdates++];
  u->id = w->next_update_id++;
  u->delivered = false;
  struct buf json = BUF_INIT;
  buf_printf(&json, "{\"update_id\":%lld,\"%s\":%s}", (long long)u->id, type,
             object_json);
  u->json = buf_steal(&json, NULL);
  return u->id;
}

void world_confirm(struct sbx_world *w, int64_t offset) {
  while (w->first < w->nupdates && w->updates[w->first].id < offset) {
    free(w->updates[w->first].json);
    w->updates[w->first].json = NULL;
    w->first++;
  }
}

int world_collect_updates(struct sbx_world *w, int64_t offset, int limit,
                          struct buf *out) {
  buf_append_char(out, '[');
  int n = 0;
  for (size_t i = w->first; i < w->nupdates && n < limit; i++) {
    struct sbx_update *u = &w->updates[i];
    if (u->id < offset) continue;
    if (n++) buf_append_char(out, ',');
    buf_append_str(out, u->json);
    u->delivered = true;
  }
  buf_append_char(out, ']');
  return n;
}

bool world_has_updates_from(const struct sbx_world *w, int64_t offset) {
  for (size_t i = w->first; i < w->nupdates; i++)
    if (w->updates[i].id >= offset) return true;
  return false;
}

size_t world_undelivered(const struct sbx_world *w) {
  size_t n = 0;
  for (size_t i = w->first; i < w->nupdates; i++)
    if (!w->updates[i].delivered) n++;
  return n;
}

/* --- keyboards ----------------------------------------------------------- */

static char *read_string(struct json_reader *r) {
  struct json_slice s;
  if (json_peek(r) != JSON_STRING || !json_read_string(r, &s)) return NULL;
  struct buf out = BUF_INIT;
  json_unescape(&s, &out);
  if (!out.data) buf_reserve(&out, 0);
  return buf_steal(&out, NULL);
}

static bool read_true(struct json_reader *r) {
  bool v = false;
  if (json_peek(r) == JSON_TRUE || json_peek(r) == JSON_FALSE)
    json_read_bool(r, &v);
  else
    json_skip(r, NULL);
  return v;
}

/* One button object; reply keyboards may also hold a plain string. */
static int parse_button(struct json_reader *r, bool is_inline,
                        struct sbx_button *b, struct buf *err) {
  memset(b, 0, sizeof *b);
  b->kind = is_inline ? SBX_BTN_OTHER : SBX_BTN_TEXT;
  if (!is_inline && json_peek(r) == JSON_STRING) {
    b->text = read_string(r);
    return b->text ? 0 : -1;
  }
  if (!json_object_begin(r)) {
    buf_append_str(err, "Bad Request: can't parse keyboard button");
    return -1;
  }
  struct json_slice key;
  bool has_action = false;
  while (json_object_next(r, &key)) {
    if (json_slice_is(&key, "text")) {
      free(b->text);
      b->text = read_string(r);
    } else if (is_inline && json_slice_is(&key, "callback_data")) {
      free(b->value);
      b->value = read_string(r);
      b->kind = SBX_BTN_CALLBACK;
      has_action = true;
    } else if (is_inline && json_slice_is(&key, "url")) {
      free(b->value);
      b->value = read_string(r);
      b->kind = SBX_BTN_URL;
      has_action = true;
    } else if (!is_inline && json_slice_is(&key, "request_location")) {
      if (read_true(r)) b->kind = SBX_BTN_LOCATION;
    } else if (!is_inline && json_slice_is(&key, "request_contact")) {
      if (read_true(r)) b->kind = SBX_BTN_CONTACT;
    } else {
      if (is_inline && !has_action) {
        free(b->value);
        struct buf name = BUF_INIT;
        json_unescape(&key, &name);
        b->value = buf_steal(&name, NULL);
        has_action = true;
      }
      json_skip(r, NULL);
    }
  }
  if (json_error(r)) {
    buf_append_str(err, "Bad Request: can't parse reply keyboard markup JSON object");
    return -1;
  }
  if (!b->text || !*b->text) {
    buf_append_str(err, "Bad Request: text buttons are unallowed in the inline "
                        "keyboard");
    if (!is_inline) {
      buf_reset(err);
      buf_append_str(err, "Bad Request: keyboard button text must be non-empty");
    }
    return -1;
  }
  if (is_inline && !has_action) {
    buf_append_str(err, "Bad Request: text buttons are unallowed in the inline "
                        "keyboard");
    return -1;
  }
  if (b->kind == SBX_BTN_CALLBACK &&
      (strlen(b->value) == 0 || strlen(b->value) > SBX_MAX_CALLBACK_DATA)) {
    buf_append_str(err, "Bad Request: BUTTON_DATA_INVALID");
    return -1;
  }
  return 0;
}

static void button_free(struct sbx_button *b) {
  free(b->text);
  free(b->value);
}

static int parse_rows(struct json_reader *r, bool is_inline,
                      struct sbx_keyboard *kb, struct buf *err) {
  if (!json_array_begin(r)) {
    buf_append_str(err, "Bad Request: field \"inline_keyboard\" must be an "
                        "Array");
    return -1;
  }
  while (json_array_next(r)) {
    if (!json_array_begin(r)) {
      buf_append_str(err, "Bad Request: can't parse keyboard row: must be an "
                          "Array");
      return -1;
    }
    size_t len = 0;
    while (json_array_next(r)) {
      struct sbx_button b;
      if (parse_button(r, is_inline, &b, err) != 0) {
        button_free(&b);
        return -1;
      }
      kb->buttons = grow(kb->buttons, kb->nbuttons, sizeof *kb->buttons);
      kb->buttons[kb->nbuttons++] = b;
      len++;
    }
    kb->row_len = grow(kb->row_len, kb->nrows, sizeof *kb->row_len);
    kb->row_len[kb->nrows++] = len;
  }
  if (json_error(r)) return -1;
  /* Telegram's limits: 100 buttons in an inline keyboard, 300 in a reply
   * keyboard. */
  if (kb->nbuttons > (is_inline ? SBX_MAX_INLINE_BUTTONS : SBX_MAX_REPLY_BUTTONS)) {
    buf_append_str(err, "Bad Request: reply markup is too long");
    return -1;
  }
  return 0;
}

int world_parse_keyboard(const char *json, size_t len, struct sbx_keyboard *kb,
                         struct buf *err) {
  memset(kb, 0, sizeof *kb);
  struct json_reader r;
  json_reader_init(&r, json, len);
  if (!json_object_begin(&r)) {
    buf_append_str(err, "Bad Request: can't parse reply keyboard markup JSON "
                        "object");
    return -1;
  }
  struct json_slice key;
  bool known = false;
  while (json_object_next(&r, &key)) {
    if (json_slice_is(&key, "inline_keyboard") ||
        json_slice_is(&key, "keyboard")) {
      kb->is_inline = json_slice_is(&key, "inline_keyboard");
      known = true;
      if (parse_rows(&r, kb->is_inline, kb, err) != 0) {
        if (!err->len)
          buf_append_str(err, "Bad Request: can't parse reply keyboard markup "
                              "JSON object");
        world_keyboard_free(kb);
        return -1;
      }
    } else if (json_slice_is(&key, "remove_keyboard")) {
      kb->remove = read_true(&r);
      known = true;
    } else if (json_slice_is(&key, "force_reply")) {
      kb->force_reply = read_true(&r);
      known = true;
    } else if (json_slice_is(&key, "one_time_keyboard")) {
      kb->one_time = read_true(&r);
    } else {
      json_skip(&r, NULL);
    }
  }
  if (json_error(&r) || !known) {
    buf_append_str(err, "Bad Request: can't parse reply keyboard markup JSON "
                        "object");
    world_keyboard_free(kb);
    return -1;
  }
  return 0;
}

void world_keyboard_free(struct sbx_keyboard *kb) {
  for (size_t i = 0; i < kb->nbuttons; i++) button_free(&kb->buttons[i]);
  free(kb->buttons);
  free(kb->row_len);
  memset(kb, 0, sizeof *kb);
}
