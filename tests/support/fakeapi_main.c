/* The fake Bot API server as a program: for benchmarks and trying tghost
 * by hand without a real bot.
 *
 *   fakeapi [--port N] [--token T] [--updates N] [--chats N]
 *           [--delay MS] [--rate N]
 *
 * It serves on 127.0.0.1, queues --updates text messages spread over
 * --chats chats (more every second with --rate), answers sendMessage after
 * --delay ms, and prints a line a second with the calls it has seen. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fakeapi.h"

static struct fakeapi *api;
static long rate, chats = 100, pushed;
static size_t last_calls;

static void push(long n) {
  char text[64];
  for (long i = 0; i < n; i++, pushed++) {
    snprintf(text, sizeof text, "message %ld", pushed);
    fakeapi_push_text(api, 1000 + pushed % chats, 1000 + pushed % chats, text);
  }
}

static void on_second(evutil_socket_t fd, short what, void *arg) {
  if (rate > 0) push(rate);
  size_t calls = fakeapi_call_count(api);
  printf("calls %zu (+%zu/s), polls %zu, in flight %zu (max %zu), "
         "confirmed offset %lld\n",
         calls, calls - last_calls, fakeapi_poll_count(api),
         fakeapi_unanswered(api), fakeapi_max_unanswered(api),
         (long long)fakeapi_confirmed_offset(api));
  fflush(stdout);
  last_calls = calls;
}

static void on_signal(evutil_socket_t fd, short what, void *arg) {
  event_base_loopbreak(arg);
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
      {"token", required_argument, NULL, 't'},
      {"updates", required_argument, NULL, 'u'},
      {"chats", required_argument, NULL, 'c'},
      {"delay", required_argument, NULL, 'd'},
      {"rate", required_argument, NULL, 'r'},
      {NULL, 0, NULL, 0}};
  const char *token = "123:fake";
  long updates = 0, delay = 0;
  int c;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
      case 't': token = optarg; break;
      case 'u': updates = atol(optarg); break;
      case 'c': chats = atol(optarg) > 0 ? atol(optarg) : 1; break;
      case 'd': delay = atol(optarg); break;
      case 'r': rate = atol(optarg); break;
      default:
        fprintf(stderr, "usage: fakeapi [--token T] [--updates N] [--chats N] "
                        "[--delay MS] [--rate N]\n");
        return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  struct event_base *base = event_base_new();
  struct fakeapi_config cfg = {.token = token};
  api = fakeapi_new(base, &cfg);
  if (delay) fakeapi_set_method_delay(api, "sendMessage", delay);
  push(updates);
  printf("fake Bot API at %s (token %s)\n", fakeapi_url(api), token);
  fflush(stdout);
  struct event *tick = event_new(base, -1, EV_PERSIST, on_second, NULL);
  struct timeval sec = {1, 0};
  evtimer_add(tick, &sec);
  struct event *sigint = evsignal_new(base, SIGINT, on_signal, base);
  struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, base);
  evsignal_add(sigint, NULL);
  evsignal_add(sigterm, NULL);
  event_base_dispatch(base);
  event_free(tick);
  event_free(sigint);
  event_free(sigterm);
  fakeapi_free(api);
  event_base_free(base);
  return 0;
}
