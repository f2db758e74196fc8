#include "net/httpd.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "base/netaddr.h"

struct evhttp *httpd_listen(struct event_base *base, const char *addr,
                            const char *what, char *bound, size_t bound_len,
                            struct buf *err) {
  struct sockaddr_storage ss;
  socklen_t len;
  if (netaddr_parse(addr, what, &ss, &len, err) != 0) return NULL;
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    buf_printf(err, "%s %s: cannot create a socket: %s", what, addr,
               strerror(errno));
    return NULL;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 511) != 0) {
    buf_printf(err, "%s %s: cannot listen: %s", what, addr, strerror(errno));
    close(fd);
    return NULL;
  }
  len = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &len);
  netaddr_format((struct sockaddr *)&ss, bound, bound_len);
  struct evhttp *http = evhttp_new(base);
  if (!http || !evhttp_accept_socket_with_handle(http, fd)) {
    buf_printf(err, "%s %s: cannot start the HTTP server", what, addr);
    if (http) evhttp_free(http);
    close(fd);
    return NULL;
  }
  return http;
}

void httpd_nodelay(struct evhttp_request *req) {
  struct evhttp_connection *conn = evhttp_request_get_connection(req);
  struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
  if (!bev) return;
  int one = 1;
  setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void httpd_reply(struct evhttp_request *req, int code, const char *reason,
                 const char *content_type, const char *body, size_t len) {
  struct evbuffer *out = evbuffer_new();
  if (len) evbuffer_add(out, body, len);
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                    content_type ? content_type : "text/plain; charset=utf-8");
  evhttp_send_reply(req, code, reason, out);
  evbuffer_free(out);
}
