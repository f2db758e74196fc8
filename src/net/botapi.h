/* The Telegram Bot API over HTTP: builds method URLs from the API root and
 * the token, sends parameters, and classifies responses.
 *
 * Nothing that leaves this module contains the token: URLs stay inside,
 * and transport error texts are redacted before they are returned. No
 * per-method code: any method name is a path segment. A method's URL is
 * parsed once, on its first call, and its requests borrow it: free the
 * botapi after the requests made from it. */
#ifndef TGHOST_BOTAPI_H
#define TGHOST_BOTAPI_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "net/http.h"
#include "base/json.h"

struct botapi;

struct botapi_config {
  const char *api_root;        /* "https://api.telegram.org" */
  const char *token;           /* may be NULL: calls then fail clearly */
  long call_timeout_ms;        /* total time for a method call */
  size_t max_response;         /* bytes; larger responses are errors */
};

struct botapi *botapi_new(struct http_client *http,
                          const struct botapi_config *cfg);
void botapi_free(struct botapi *api);
bool botapi_has_token(const struct botapi *api);
/* The API root the calls go to (never contains the token). */
const char *botapi_api_root(const struct botapi *api);

/* True if name can be a Bot API method (letters, digits, '_'). */
bool botapi_valid_method(const char *name);

/* Creates an unstarted request for a method; the caller adds a body (JSON
 * or multipart), may adjust it, and starts it. NULL with err set when
 * there is no token or the method name is invalid. */
struct http_request *botapi_request(struct botapi *api, const char *method,
                                    struct buf *err);
/* The same with a JSON body (ownership of json passes to the request). */
struct http_request *botapi_request_json(struct botapi *api,
                                         const char *method, char *json,
                                         size_t len, struct buf *err);
/* A GET request for a file from getFile's file_path. */
struct http_request *botapi_file_request(struct botapi *api,
                                         const char *file_path,
                                         struct buf *err);

enum botapi_outcome {
  BOTAPI_OK,             /* "ok": true; result holds the raw result */
  BOTAPI_API_ERROR,      /* "ok": false; error_code, description, ... */
  BOTAPI_BAD_RESPONSE,   /* HTTP reply that is not a Bot API JSON object */
  BOTAPI_NETWORK_ERROR,  /* no complete HTTP reply */
};

/* A larger retry_after from the server is read as this (a day). */
#define BOTAPI_MAX_RETRY_AFTER_S 86400.0

struct botapi_reply {
  enum botapi_outcome outcome;
  long http_status;
  int64_t error_code;
  double retry_after;          /* seconds, from parameters; 0 if absent;
                                  finite, at most BOTAPI_MAX_RETRY_AFTER_S */
  struct buf description;      /* redacted, human-readable */
  struct json_slice result;    /* raw "result" value (BOTAPI_OK) */
  struct json_slice parameters;/* raw "parameters" (BOTAPI_API_ERROR), may be empty */
};

/* Classifies a finished request. The slices point into the request's body,
 * so the reply is valid as long as the request is. */
void botapi_parse_reply(const struct http_request *req,
                        struct botapi_reply *reply);
/* The same, but "result" is read by its consumer in the same pass:
 * read_result is handed the reader at the value and must consume it,
 * validating (an error it sets on the reader makes the reply a bad
 * response; reply->result spans what it read). With read_result NULL the
 * result is only delimited, not validated: for a consumer that validates
 * reply->result itself as it reads it. Either way the reply may turn out
 * not to be BOTAPI_OK after read_result ran ("ok" may come after it). */
typedef bool (*botapi_result_reader)(struct json_reader *r, void *ud);
void botapi_parse_reply_with(const struct http_request *req,
                             struct botapi_reply *reply,
                             botapi_result_reader read_result, void *ud);
void botapi_reply_free(struct botapi_reply *reply);
/* Whether retrying the same request later may succeed. */
bool botapi_reply_retryable(const struct botapi_reply *reply);

#endif
