/* A fake Telegram Bot API server for the tests and benchmarks: HTTP/1.1 on
 * loopback, on the caller's libevent loop.
 *
 * It answers getMe, getUpdates with real long-poll semantics (an offset
 * confirms and drops earlier updates, limit is honoured, the request is
 * held open up to its timeout and answered as soon as updates arrive),
 * sendMessage, sendMessageDraft (draft_id and text checked; refused to
 * groups), setWebhook
 * and deleteWebhook (while a webhook is set,
 * getUpdates answers 409, as Telegram does), getWebhookInfo, and records
 * and accepts every other method. Tests inject
 * updates, delay or hold responses, inject faults, and inspect every call
 * received, in order. Like api.telegram.org it sets TCP_NODELAY. */
#ifndef TGHOST_TESTS_FAKEAPI_H
#define TGHOST_TESTS_FAKEAPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

struct fakeapi;

/* One method call the server received. */
struct fake_call {
  uint64_t seq;             /* order of arrival, from 0 */
  char *method;
  char *params;             /* the parameters as a JSON object */
  size_t params_len;
  int64_t chat_id;          /* params.chat_id when it is an integer, else 0 */
  uint64_t received_us;
  uint64_t answered_us;     /* 0 while unanswered */
  bool dropped;             /* the client closed the connection first */
  int connection;           /* which connection carried it */
};

/* One getUpdates call. */
struct fake_poll {
  int64_t offset;
  int limit;
  int timeout;
  char *allowed_updates;    /* raw JSON, or NULL */
  int returned;             /* updates in the answer */
  uint64_t received_us;
  int connection;
};

enum fake_fault {
  FAULT_NONE,
  FAULT_RESET,         /* close the connection without an answer */
  FAULT_500,           /* 500 with a Bot API error body */
  FAULT_502_HTML,      /* 502 with an HTML body */
  FAULT_GARBAGE,       /* 200 with a body that is not JSON */
  FAULT_TRUNCATED,     /* Content-Length larger than what is sent */
  FAULT_429,           /* Too Many Requests, retry_after = fault_retry_after */
  FAULT_401,
  FAULT_409,
  FAULT_HOLD,          /* never answer */
  FAULT_OK_FALSE_200,  /* HTTP 200 with {"ok":false} and nothing else */
  FAULT_409_WEBHOOK,   /* 409: a webhook is set (what getUpdates gets
                          while setWebhook's url is set; deleteWebhook or
                          setWebhook with an empty url clears it) */
  FAULT_RAW_200,       /* HTTP 200 with the body set by
                          fakeapi_set_fault_raw_body */
};

/* Decides the fault for a call: method and the method's own call count. */
typedef enum fake_fault (*fake_fault_fn)(void *ud, const char *method,
                                         uint64_t nth);
/* Delay in ms before answering a call (negative: never answer). */
typedef long (*fake_delay_fn)(void *ud, const struct fake_call *call);

struct fakeapi_config {
  const char *token;
  const char *username;     /* the bot's username, default "test_bot" */
  int64_t bot_id;
};

struct fakeapi *fakeapi_new(struct event_base *base,
                            const struct fakeapi_config *cfg);
void fakeapi_free(struct fakeapi *f);
int fakeapi_port(const struct fakeapi *f);
/* "http://127.0.0.1:PORT" */
const char *fakeapi_url(const struct fakeapi *f);

/* Queues an update; body is the JSON members after "update_id" (for
 * example "\"message\":{...}"). Returns the update_id given. */
int64_t fakeapi_push_update(struct fakeapi *f, const char *body);
/* Queues an update whose JSON text is given whole (it may be malformed or
 * repeat an id); position orders it among the others and decides which
 * offset confirms it, as update_id does for well-formed ones. */
void fakeapi_push_raw_update(struct fakeapi *f, int64_t position,
                             const char *json);
/* The body FAULT_RAW_200 answers with (copied; at most 255 bytes). */
void fakeapi_set_fault_raw_body(struct fakeapi *f, const char *body);
/* The retry_after of 429 answers as raw JSON text ("1e400"), or NULL. */
void fakeapi_set_fault_retry_after_text(struct fakeapi *f, const char *text);
/* A text message from user in chat. */
int64_t fakeapi_push_text(struct fakeapi *f, int64_t chat_id, int64_t user_id,
                          const char *text);
/* Starts update ids from here (default 1000). */
void fakeapi_set_next_update_id(struct fakeapi *f, int64_t id);

void fakeapi_set_fault_fn(struct fakeapi *f, fake_fault_fn fn, void *ud);
void fakeapi_set_fault_retry_after(struct fakeapi *f, int seconds);
void fakeapi_set_delay_fn(struct fakeapi *f, fake_delay_fn fn, void *ud);
/* A fixed delay for one method (negative: never answer). */
void fakeapi_set_method_delay(struct fakeapi *f, const char *method, long ms);

/* Received calls (getUpdates excluded), in arrival order. */
size_t fakeapi_call_count(const struct fakeapi *f);
const struct fake_call *fakeapi_call(const struct fakeapi *f, size_t i);
size_t fakeapi_count_method(const struct fakeapi *f, const char *method);
/* getUpdates calls. */
size_t fakeapi_poll_count(const struct fakeapi *f);
const struct fake_poll *fakeapi_poll(const struct fakeapi *f, size_t i);

/* The highest offset a getUpdates sent: updates below it are confirmed. */
int64_t fakeapi_confirmed_offset(const struct fakeapi *f);
/* How often update id was part of a getUpdates answer. */
int fakeapi_times_delivered(const struct fakeapi *f, int64_t update_id);
/* Method calls (getUpdates excluded) received and not yet answered, now
 * and at most so far. */
size_t fakeapi_unanswered(const struct fakeapi *f);
size_t fakeapi_max_unanswered(const struct fakeapi *f);
size_t fakeapi_connections_accepted(const struct fakeapi *f);

/* The url of the webhook set (setWebhook), or NULL. */
const char *fakeapi_webhook_url(const struct fakeapi *f);
/* What getWebhookInfo reports from now on: url (NULL: the one set), a
 * delivery error (error_date 0: none) and the updates waiting. */
void fakeapi_set_webhook_info(struct fakeapi *f, const char *url,
                              int64_t error_date, const char *error_message,
                              int64_t pending);

/* Reads params members of a call. */
bool fake_call_int(const struct fake_call *c, const char *name, int64_t *out);
/* Returns a malloc'd string, or NULL. */
char *fake_call_string(const struct fake_call *c, const char *name);
/* The raw JSON text of a member, malloc'd, or NULL. */
char *fake_call_raw(const struct fake_call *c, const char *name);

/* Script I/O: multipart uploads arrive in params as text fields, and file
 * parts as {"filename", "size", "fnv1a64" (hex), "type"}; files added here
 * are served by getFile (file_path "files/<file_id>") and downloaded from
 * /file/bot<token>/files/<file_id>. /http/echo?ms=&status=&bytes= is a
 * plain HTTP endpoint for tghost.http (see fakeapi.c). */
uint64_t fake_fnv1a64(const void *data, size_t len);
void fakeapi_add_file(struct fakeapi *f, const char *file_id,
                      const void *data, size_t len);
size_t fakeapi_http_requests(const struct fakeapi *f);
size_t fakeapi_downloads(const struct fakeapi *f);

#endif
