/* --trace (and --log-level debug): what the bot does, one line per update
 * it receives and per Bot API call it makes, through the log (so the token
 * is redacted and --log-format json gives structured members).
 *
 *   TRACE [gen 1] [update 12] update message chat 100000001 from Alice: "/start"
 *   TRACE [gen 1] [update 14] update message chat 7 from Bob: "hi" (partition 3)
 *   TRACE [gen 1] [update 12] call sendMessage chat 100000001: ok (2.1 ms)
 *   TRACE [gen 1] [update 13] call editMessageText chat 100000001: 400 Bad
 *         Request: message is not modified (1.7 ms)
 *
 * Layer: Bot API client (includes log, json, botapi); called by the
 * runner when an update starts and by apicall.c when a call ends. Both are
 * no-ops unless tracing is on (log_trace_enabled). */
#ifndef TGHOST_TRACE_H
#define TGHOST_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/http.h"
#include "base/log.h"

/* An update about to start in generation gen (its raw JSON); partition:
 * its cluster partition, or -1; redelivered: it runs again (ctx.redelivered). */
void trace_update(int gen, int64_t update_id, int partition, bool redelivered,
                  const char *json, size_t len);
/* A finished call: req holds the response, or start_error says why it
 * could not be sent; chat may be NULL. */
void trace_call(const struct log_fields *fields, const char *method,
                const char *chat, double ms, const struct http_request *req,
                const char *start_error);

#endif
