/* Telegram's formatting, as the Bot API parses it: text with parse_mode
 * HTML, MarkdownV2 or (legacy) Markdown becomes plain text plus message
 * entities (offsets and lengths in UTF-16 code units), or an error with
 * Telegram's own description ("Character '.' is reserved and must be
 * escaped with the preceding '\'", "Can't find end tag corresponding to
 * start tag \"i\"", ...). Explicit entities (the entities parameter) are
 * read and checked against the text the same way. The sandbox applies it
 * to every text and caption a bot sends, so a transcript fails where
 * Telegram would answer 400.
 *
 * The rules follow Telegram's documentation (core.telegram.org/bots/api,
 * "Formatting options") and the behaviour of its server: a tag or a
 * markup character that opens an entity must close it; empty entities
 * vanish; entities come out sorted by offset, longer first; nothing is
 * nested inside pre or code.
 *
 * Layer: pure data (buf and json only); no loop, no I/O. */
#ifndef TGHOST_ENTITIES_H
#define TGHOST_ENTITIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

enum ent_mode { ENT_PLAIN, ENT_HTML, ENT_MARKDOWN_V2, ENT_MARKDOWN };

struct ent {
  char type[24];            /* the Bot API's name: "bold", "text_link", ... */
  int32_t offset, length;   /* UTF-16 code units */
  char *url;                /* text_link */
  char *language;           /* pre */
  char *custom_emoji_id;    /* custom_emoji */
  int64_t user_id;          /* text_mention */
};

struct ent_list {
  struct ent *v;
  size_t n, cap;
};

/* The mode of a parse_mode value as the Bot API reads it (any case);
 * false for a value it does not support. An empty value is ENT_PLAIN. */
bool entities_mode(const char *parse_mode, enum ent_mode *mode);

/* Parses len bytes of text in mode into the text shown (out, appended)
 * and its entities (appended to list). Returns 0, or -1 with err set to
 * Telegram's description of the problem (what follows "Bad Request:
 * can't parse entities: "). */
int entities_parse(const char *text, size_t len, enum ent_mode mode,
                   struct buf *out, struct ent_list *list, struct buf *err);

/* Reads a JSON array of MessageEntity for a text of text_units UTF-16
 * code units. Returns 0, or -1 with err set (what follows "Bad Request:
 * "). */
int entities_from_json(const char *json, size_t len, size_t text_units,
                       struct ent_list *list, struct buf *err);

/* Appends the list as a JSON array of MessageEntity. */
void entities_to_json(const struct ent_list *list, struct buf *out);

/* UTF-16 code units in s (as Telegram counts characters). */
size_t entities_utf16_length(const char *s, size_t len);

/* Byte range of the UTF-16 range [offset, offset + length) of s. */
void entities_byte_range(const char *s, size_t len, int32_t offset,
                         int32_t length, size_t *begin, size_t *end);

void ent_list_free(struct ent_list *list);

#endif
