/* The fake model server as a program: an OpenAI-style chat completions
 * API on 127.0.0.1 that streams its answers by server-sent events, for
 * trying a model-backed bot in the sandbox without a model (README,
 * "A model-backed chat bot").
 *
 *   fakemodel [--port N] [--tokens N] [--seconds S]
 *
 * Each answer repeats the user's last message and counts the messages the
 * bot sent (its history), in --tokens pieces over --seconds. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "fakemodel.h"

static void on_stop(evutil_socket_t fd, short what, void *arg) {
  event_base_loopbreak(arg);
}

int main(int argc, char **argv) {
  int port = 8000, tokens = 24;
  double seconds = 3;
  static const struct option opts[] = {{"port", required_argument, 0, 'p'},
                                       {"tokens", required_argument, 0, 't'},
                                       {"seconds", required_argument, 0, 's'},
                                       {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "p:t:s:", opts, NULL)) != -1) {
    switch (c) {
      case 'p': port = atoi(optarg); break;
      case 't': tokens = atoi(optarg); break;
      case 's': seconds = atof(optarg); break;
      default:
        fprintf(stderr, "usage: fakemodel [--port N] [--tokens N] "
                        "[--seconds S]\n");
        return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  struct event_base *base = event_base_new();
  struct fakemodel *f = fakemodel_new(base, port);
  if (!f) return 1;
  fakemodel_set_answer(f, tokens, seconds, false);
  struct event *sigint = evsignal_new(base, SIGINT, on_stop, base);
  struct event *sigterm = evsignal_new(base, SIGTERM, on_stop, base);
  event_add(sigint, NULL);
  event_add(sigterm, NULL);
  printf("fake model on %s/v1/chat/completions (%d tokens over %.1f s per "
         "answer)\n", fakemodel_url(f), tokens, seconds);
  fflush(stdout);
  event_base_dispatch(base);
  event_free(sigint);
  event_free(sigterm);
  fakemodel_free(f);
  event_base_free(base);
  return 0;
}
