/* The methods of the Telegram Bot API version tghost was generated for
 * (tools/botapi/gen.mjs from @grammyjs/types; botapi_methods.c is its
 * output, never edited by hand): each method's name, result type,
 * parameters in the order the Bot API lists them and grammY's positional
 * arguments. bot.api reads it for positional calls and "did you mean"
 * suggestions, the sandbox for the
 * methods Telegram has, `tghost --version` for the version.
 *
 * Layer: Bot API client (pure data, no includes beyond libc). */
#ifndef TGHOST_BOTAPI_METHODS_H
#define TGHOST_BOTAPI_METHODS_H

#include <stddef.h>

struct botapi_method {
  const char *name;
  /* "Message", "boolean", "Message[]", "integer|...": lua/apispec.lua's
   * type syntax. */
  const char *result;
  /* Space-separated, in the Bot API's order; a required one ends in '!':
   * "chat_id! text! business_connection_id ...". */
  const char *params;
  /* grammY's positional arguments (its Api class), where they are not
   * the required parameters in order: "chat_id message_id text" for
   * editMessageText; an optional one ends in '?'. NULL: the required
   * ones. */
  const char *positional;
};

/* "10.2" */
extern const char botapi_version[];

size_t botapi_method_count(void);
/* The i-th method in case-insensitive name order, or NULL past the end. */
const struct botapi_method *botapi_method_at(size_t i);
/* The method called name (case-insensitively, as Telegram matches them),
 * or NULL: Telegram has no such method. O(log n). */
const struct botapi_method *botapi_method_find(const char *name);

#endif
