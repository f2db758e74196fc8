/* The sandbox's Telegram: the users, chats, messages, files and callback
 * queries that `tghost --sandbox` emulates, and the updates waiting for
 * the bot. Pure data: no loop, no I/O. sandbox_api.c serves it to the bot
 * over HTTP; sandbox_chat.c shows it in the terminal and acts for the
 * user.
 *
 * Layer: data structures (includes buf and json only).
 *
 * As in Telegram: user and private-chat ids are the same positive number,
 * group ids are negative; message ids count from 1 in each chat; update
 * ids count up from 1; an update is kept until a getUpdates offset above
 * it confirms it. Updates of a type the bot's allowed_updates leave out
 * are never created (world_push_update says so). */
#ifndef TGHOST_SANDBOX_WORLD_H
#define TGHOST_SANDBOX_WORLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

/* Telegram's limits the sandbox enforces, so a bot meets them here first. */
#define SBX_MAX_TEXT 4096          /* characters of a message text */
#define SBX_MAX_CAPTION 1024
#define SBX_MAX_CALLBACK_DATA 64   /* bytes */
#define SBX_MAX_INLINE_BUTTONS 100
#define SBX_MAX_REPLY_BUTTONS 300
#define SBX_MAX_KEPT_FILE (20u << 20) /* getFile serves files up to 20 MB */

struct sbx_world;

struct sbx_user {
  int64_t id;
  char *first_name;
  char *username;
};

enum sbx_chat_type { SBX_PRIVATE, SBX_GROUP };

struct sbx_message {
  int64_t id;
  struct sbx_chat *chat;
  const struct sbx_user *from;  /* NULL: the bot */
  int64_t date, edit_date;
  char *text;                   /* text, or the caption of media; may be NULL */
  char *entities;               /* raw JSON array for text, or NULL */
  char *media;                  /* JSON members of the media ("\"photo\":[..]") */
  char *media_summary;          /* for people: "photo cat.png, 12.3 KiB" */
  char *markup;                 /* reply_markup as sent (raw JSON), or NULL */
  char *service;                /* JSON members of a service message */
  int64_t reply_to;             /* a message id in the same chat, or 0 */
  char *payload;                /* an invoice's payload (not shown to users) */
  bool deleted;
};

struct sbx_chat {
  int64_t id;
  enum sbx_chat_type type;
  char *title;                  /* groups */
  struct sbx_user *user;        /* private chats: the user */
  struct sbx_message **messages;/* index = message id - 1 */
  size_t nmessages, cap;
  int64_t *members;             /* groups: users who have joined */
  size_t nmembers;
  char *reply_keyboard;         /* the reply keyboard shown, raw JSON */
  int64_t reply_keyboard_msg;   /* the message that showed it */
};

struct sbx_file {
  char *file_id, *unique_id;
  char *name;                   /* file name, for people and downloads */
  char *kind;                   /* "photo", "document", ... */
  size_t size;
  char *path;                   /* a user's file: served from disk */
  char *data;                   /* a bot's upload: kept when small enough */
  bool has_data;
};

/* What a query answers: a button press, an inline query, a payment about
 * to be made. */
enum sbx_query_kind { SBX_QUERY_CALLBACK, SBX_QUERY_INLINE, SBX_QUERY_PRE_CHECKOUT };

struct sbx_query {
  enum sbx_query_kind kind;
  char id[24];
  int64_t chat_id, message_id;
  const struct sbx_user *from;
  char *data;                   /* callback data, the inline query's text,
                                   the invoice's payload */
  char *button;                 /* the button's label */
  bool answered;
};

/* A parsed reply_markup. */
enum sbx_button_kind {
  SBX_BTN_CALLBACK,   /* inline: callback_data */
  SBX_BTN_URL,        /* inline: url (also login_url, web_app) */
  SBX_BTN_OTHER,      /* inline: switch_inline_query, pay, ... (not emulated) */
  SBX_BTN_TEXT,       /* reply keyboard: sends its text */
  SBX_BTN_LOCATION,   /* reply keyboard: request_location */
  SBX_BTN_CONTACT,    /* reply keyboard: request_contact */
};

struct sbx_button {
  char *text;
  enum sbx_button_kind kind;
  char *value;        /* callback data, url, or the field name for OTHER */
};

struct sbx_keyboard {
  bool is_inline;     /* inline_keyboard; otherwise a reply keyboard */
  bool remove;        /* remove_keyboard */
  bool force_reply;
  bool one_time;
  size_t nrows;
  size_t *row_len;
  struct sbx_button *buttons;  /* all rows, one after another */
  size_t nbuttons;
};

struct sbx_world *world_new(void);
void world_free(struct sbx_world *w);

/* The bot's own user (id, "Sandbox Bot", @sandbox_bot). */
const struct sbx_user *world_bot(const struct sbx_world *w);
void world_user_json(const struct sbx_world *w, const struct sbx_user *u,
                     struct buf *out);
void world_chat_json(const struct sbx_chat *c, struct buf *out);

/* Users by first name, created on first use. */
struct sbx_user *world_user(struct sbx_world *w, const char *name);
struct sbx_chat *world_private_chat(struct sbx_world *w, struct sbx_user *u);
/* A group by title, created on first use (*created says so). */
struct sbx_chat *world_group(struct sbx_world *w, const char *title,
                             bool *created);
struct sbx_chat *world_chat(struct sbx_world *w, int64_t id);
/* Adds u to a group's members; false if it was one already. */
bool world_join(struct sbx_chat *c, const struct sbx_user *u);

/* A new message in c from u (NULL: the bot) with the next id, dated now. */
struct sbx_message *world_add_message(struct sbx_world *w, struct sbx_chat *c,
                                      const struct sbx_user *from);
/* The message, or NULL (never sent, or deleted). */
struct sbx_message *world_message(struct sbx_chat *c, int64_t id);
/* The message as the Bot API's Message object (with reply_to_message one
 * level deep). */
void world_message_json(const struct sbx_world *w, const struct sbx_message *m,
                        struct buf *out);

/* The entities Telegram marks in a text a user typed: bot_command,
 * mention, hashtag, url; offsets in UTF-16 code units. Appends a JSON
 * array, or nothing when there are none (returns false). */
bool world_text_entities(const char *text, struct buf *out);
/* Characters as Telegram counts them (UTF-16 code units). */
size_t world_utf16_length(const char *s);

/* Files: a user's from disk (path) or a bot's upload (data, copied when
 * at most SBX_MAX_KEPT_FILE bytes). */
struct sbx_file *world_add_file(struct sbx_world *w, const char *kind,
                                const char *name, size_t size,
                                const char *path, const char *data);
struct sbx_file *world_file(struct sbx_world *w, const char *file_id);

struct sbx_query *world_add_query(struct sbx_world *w,
                                  const struct sbx_message *m,
                                  const struct sbx_user *from,
                                  const char *data, const char *button);
/* An inline query (m NULL) or a pre-checkout query about invoice m. */
struct sbx_query *world_add_other_query(struct sbx_world *w,
                                        enum sbx_query_kind kind,
                                        const struct sbx_message *m,
                                        const struct sbx_user *from,
                                        const char *data);
struct sbx_query *world_query(struct sbx_world *w, const char *id);

/* allowed_updates from a getUpdates (raw JSON array; NULL leaves the
 * setting as it is, an empty array restores Telegram's default). */
void world_set_allowed_updates(struct sbx_world *w, const char *json,
                               size_t len);
bool world_allows(const struct sbx_world *w, const char *type);
/* Queues {"update_id":N,"<type>":<object>}. Returns its id, or 0 when the
 * bot's allowed_updates leave the type out (nothing is queued). */
int64_t world_push_update(struct sbx_world *w, const char *type,
                          const char *object_json);
/* Confirms every update below offset (drops them). */
void world_confirm(struct sbx_world *w, int64_t offset);
/* Appends a JSON array of up to limit updates from offset on; returns how
 * many. */
int world_collect_updates(struct sbx_world *w, int64_t offset, int limit,
                          struct buf *out);
bool world_has_updates_from(const struct sbx_world *w, int64_t offset);
/* Updates queued and never handed to the bot. */
size_t world_undelivered(const struct sbx_world *w);

/* Parses a reply_markup. Returns 0, or -1 with err set to the description
 * Telegram would give ("Bad Request: ..."). */
int world_parse_keyboard(const char *json, size_t len, struct sbx_keyboard *kb,
                         struct buf *err);
void world_keyboard_free(struct sbx_keyboard *kb);

/* "12.3 KiB", "850 bytes" */
void world_format_size(size_t bytes, char *out, size_t n);

#endif
