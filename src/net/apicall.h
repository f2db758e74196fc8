/* Bot API method calls with flood control, independent of Lua.
 *
 * A call is a prepared request (JSON or multipart, from botapi.c) that this
 * module sends, retries after a 429 (waiting Telegram's retry_after, a
 * bounded number of times, when auto-retry is on) and, when the throttle is
 * on and the call sends a message to a chat, queues per chat so the bot
 * stays within Telegram's limits (see throttle.h). Calls that do not send a
 * message (answerCallbackQuery, getChat, ...) never wait in the throttle.
 *
 * The done callback runs once, from the loop, with the final request (the
 * caller parses and frees it); cancelling a call before that frees
 * everything and no callback follows. */
#ifndef TGHOST_APICALL_H
#define TGHOST_APICALL_H

#include <stdbool.h>

#include <event2/event.h>

#include "net/botapi.h"
#include "net/http.h"
#include "base/log.h"
#include "net/throttle.h"

struct apicalls;
struct apicall;

struct apicall_config {
  int max_retry_attempts;      /* 429 retries per call; 0 = auto-retry off */
  double max_delay_s;          /* a longer retry_after is not waited for */
  bool throttle;
  struct throttle_limits limits;
};

void apicall_config_default(struct apicall_config *cfg);

struct apicalls *apicalls_new(struct botapi *api, struct event_base *base);
void apicalls_free(struct apicalls *a);
void apicalls_configure(struct apicalls *a, const struct apicall_config *cfg);
const struct apicall_config *apicalls_config(const struct apicalls *a);

/* Whether calls of this method send a message to a chat (and so go through
 * the throttle when it is on): send* except sendChatAction and
 * sendMessageDraft (a preview, not a message), forward*, copy*. */
bool apicall_is_message_method(const char *method);

/* req: done(req, error, ud) gets the request back; error is NULL when
 * the request ran (whatever its HTTP outcome) and a message when it could
 * not be started (then the request holds no response). */
typedef void (*apicall_done_fn)(struct http_request *req, const char *error,
                                void *ud);

struct apicall_params {
  const char *method;
  const char *chat_key;        /* the chat for the throttle, or NULL */
  bool is_group;               /* a group, supergroup or channel */
  struct log_fields fields;    /* for log lines about retries */
  bool no_retry;               /* a 429 is the answer (no auto-retry) */
};

/* Takes over req (not started). Returns NULL with err set if the request
 * cannot be started at once (req is then freed). */
struct apicall *apicall_start(struct apicalls *a,
                              const struct apicall_params *p,
                              struct http_request *req, apicall_done_fn done,
                              void *ud, struct buf *err);
void apicall_cancel(struct apicall *c);

#endif
