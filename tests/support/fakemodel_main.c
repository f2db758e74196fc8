/* The fake model server as a program: an OpenAI-style chat completions
 * API on 127.0.0.1 that streams its answers by server-sent events, for
 * trying a model-backed bot in the sandbox without a model (docs/guide/io.md,
 * "A model-backed chat bot").
 *
 *   fakemodel [--port N] [--tokens N] [--seconds S] [--bench FILE]
 *
 * Each answer repeats the user's last message and counts the messages the
 * bot sent (its history), in --tokens pieces over --seconds. With --bench
 * (bench/streambench runs it so, a process of its own so that its
 * connections do not count against the benchmark's descriptors) answers
 * are fixed-width tokens, and on SIGTERM FILE gets what was sent: a line
 * "max_open N", then per answer "PROMPT T1 T2 ..." with the
 * CLOCK_MONOTONIC microsecond each token was handed to the socket. Port 0
 * picks a free one; the first line printed names it. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "fakemodel.h"

static void write_record(const struct fakemodel *f, const char *path) {
  FILE *out = fopen(path, "w");
  if (!out) {
    perror(path);
    return;
  }
  fprintf(out, "max_open %zu\n", fakemodel_max_open_streams(f));
  for (size_t i = 0; i < fakemodel_stream_count(f); i++) {
    const struct fakemodel_stream *s = fakemodel_stream(f, i);
    if (!s->prompt) continue;
    fprintf(out, "%s", *s->prompt ? s->prompt : "-");
    for (int t = 0; t < s->tokens_sent; t++)
      fprintf(out, " %llu", (unsigned long long)s->token_us[t]);
    fputc('\n', out);
  }
  fclose(out);
}

static void on_stop(evutil_socket_t fd, short what, void *arg) {
  event_base_loopbreak(arg);
}

int main(int argc, char **argv) {
  int port = 8000, tokens = 24;
  double seconds = 3;
  const char *record = NULL;
  static const struct option opts[] = {{"port", required_argument, 0, 'p'},
                                       {"tokens", required_argument, 0, 't'},
                                       {"seconds", required_argument, 0, 's'},
                                       {"bench", required_argument, 0, 'b'},
                                       {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "p:t:s:b:", opts, NULL)) != -1) {
    switch (c) {
      case 'p': port = atoi(optarg); break;
      case 't': tokens = atoi(optarg); break;
      case 's': seconds = atof(optarg); break;
      case 'b': record = optarg; break;
      default:
        fprintf(stderr, "usage: fakemodel [--port N] [--tokens N] "
                        "[--seconds S] [--bench FILE]\n");
        return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  struct event_base *base = event_base_new();
  struct fakemodel *f = fakemodel_new(base, port);
  if (!f) return 1;
  fakemodel_set_answer(f, tokens, seconds, record != NULL);
  struct event *sigint = evsignal_new(base, SIGINT, on_stop, base);
  struct event *sigterm = evsignal_new(base, SIGTERM, on_stop, base);
  event_add(sigint, NULL);
  event_add(sigterm, NULL);
  printf("fake model on %s/v1/chat/completions (%d tokens over %.1f s per "
         "answer)\n", fakemodel_url(f), tokens, seconds);
  fflush(stdout);
  event_base_dispatch(base);
  if (record) write_record(f, record);
  event_free(sigint);
  event_free(sigterm);
  fakemodel_free(f);
  event_base_free(base);
  return 0;
}
