/* What the fake servers (fakeapi.c, the Bot API; fakemodel.c, a model's
 * streaming HTTP API) share: a listener on loopback and the reading of a
 * query string's parameters. */
#ifndef TGHOST_TESTS_FAKEHTTP_H
#define TGHOST_TESTS_FAKEHTTP_H

#include <stddef.h>

#include <event2/listener.h>

/* Listens on 127.0.0.1:port (0: a free port) with the given backlog;
 * the port it got in *bound and "http://127.0.0.1:PORT" in url. NULL
 * when it cannot (errno says why). */
struct evconnlistener *fakehttp_listen(struct event_base *base, int port,
                                       int backlog, evconnlistener_cb cb,
                                       void *arg, int *bound, char *url,
                                       size_t url_size);

/* The parameter name of a query (a=1&b=2, NULL for none) as a number,
 * or def when absent. */
long fakehttp_query_long(const char *query, const char *name, long def);
/* The same as a string (malloc'd, not decoded), or NULL. */
char *fakehttp_query_string(const char *query, const char *name);

#endif
