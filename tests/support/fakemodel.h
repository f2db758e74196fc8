/* A fake model server and streaming HTTP endpoints, for the streaming
 * tests, the model-backed example bot and the streaming benchmark:
 * HTTP/1.1 with keep-alive on loopback, on the caller's libevent loop.
 *
 *   POST /v1/chat/completions   an OpenAI-style chat API: with "stream":
 *        true it answers by server-sent events (data: {"choices":[{"delta":
 *        {"content":"..."}}]} ... data: [DONE]), the answer's tokens spread
 *        evenly over the configured time; without, one JSON answer. The
 *        answer repeats the last user message and counts the messages it
 *        was sent, so a bot's history shows in it; in bench mode it is
 *        `tokens` fixed-width tokens ("w0001 ", ...) instead.
 *   GET  /stream?bytes=N&chunk=K&every_ms=M   N bytes in chunks of K,
 *        one every M ms (0: as fast as the client reads)
 *   POST /echo?chunk=K&every_ms=M&type=T      the request body back, in
 *        pieces, as content type T (text/plain)
 *   POST /upload                 {"bytes":N,"fnv1a64":"..."} of the body
 *        (chunked or not), hashed as it arrives and never kept
 *   GET  /status?code=C          that status, a short body
 *   GET  /silent?head=1          never answers (with head=1: sends the
 *        head of a chunked answer, then nothing)
 *
 * Every answer is recorded: when it started and ended, whether the client
 * dropped the connection first (seen at once: the server always reads, so
 * a close is noticed without waiting for a write to fail), what was sent.
 * Writes respect backpressure: the next piece goes out only once the
 * socket has taken the previous ones. */
#ifndef TGHOST_TESTS_FAKEMODEL_H
#define TGHOST_TESTS_FAKEMODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

struct fakemodel;

struct fakemodel_stream {
  char *path;                 /* without the query */
  char *prompt;               /* chat completions: the last user message */
  int messages;               /* chat completions: how many were sent */
  uint64_t started_us;
  uint64_t ended_us;          /* the answer was complete (0: not) */
  uint64_t dropped_us;        /* the client closed first (0: it did not) */
  size_t bytes_sent;          /* body bytes handed to the socket */
  int tokens_sent;
  uint64_t *token_us;         /* when each token was handed to the socket */
};

/* port 0: any free port. */
struct fakemodel *fakemodel_new(struct event_base *base, int port);
void fakemodel_free(struct fakemodel *f);
int fakemodel_port(const struct fakemodel *f);
const char *fakemodel_url(const struct fakemodel *f);   /* http://127.0.0.1:P */

/* Chat answers: how many tokens, over how many seconds (default 12 over
 * 0.6 s); bench mode: fixed-width tokens, timestamps kept. */
void fakemodel_set_answer(struct fakemodel *f, int tokens, double seconds,
                          bool bench);

size_t fakemodel_stream_count(const struct fakemodel *f);
const struct fakemodel_stream *fakemodel_stream(const struct fakemodel *f,
                                                size_t i);
/* Answers started and neither complete nor dropped. */
size_t fakemodel_open_streams(const struct fakemodel *f);
size_t fakemodel_max_open_streams(const struct fakemodel *f);

#endif
