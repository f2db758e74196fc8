#include "fakehttp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/buf.h"

struct evconnlistener *fakehttp_listen(struct event_base *base, int port,
                                       int backlog, evconnlistener_cb cb,
                                       void *arg, int *bound, char *url,
                                       size_t url_size) {
  struct sockaddr_in sin = {0};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = htons((uint16_t)port);
  struct evconnlistener *l = evconnlistener_new_bind(
      base, cb, arg, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE, backlog,
      (struct sockaddr *)&sin, sizeof sin);
  if (!l) return NULL;
  socklen_t slen = sizeof sin;
  getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&sin, &slen);
  *bound = ntohs(sin.sin_port);
  snprintf(url, url_size, "http://127.0.0.1:%d", *bound);
  return l;
}

/* The value of name=value in query, or NULL. */
static const char *query_value(const char *query, const char *name) {
  size_t n = strlen(name);
  for (const char *p = query; p && *p;) {
    if (strncmp(p, name, n) == 0 && p[n] == '=') return p + n + 1;
    p = strchr(p, '&');
    if (p) p++;
  }
  return NULL;
}

long fakehttp_query_long(const char *query, const char *name, long def) {
  const char *v = query_value(query, name);
  return v ? strtol(v, NULL, 10) : def;
}

char *fakehttp_query_string(const char *query, const char *name) {
  const char *v = query_value(query, name);
  return v ? xstrndup(v, strcspn(v, "&")) : NULL;
}
