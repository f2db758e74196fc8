#include "base/netaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int netaddr_parse(const char *text, const char *what,
                  struct sockaddr_storage *out, socklen_t *len,
                  struct buf *err) {
  memset(out, 0, sizeof *out);
  const char *colon = strrchr(text, ':');
  if (!colon || !colon[1]) {
    buf_printf(err, "%s needs ADDR:PORT (for example 127.0.0.1:8080), not "
               "'%s'", what, text);
    return -1;
  }
  char *end;
  errno = 0;
  long port = strtol(colon + 1, &end, 10);
  if (errno || *end || port < 0 || port > 65535) {
    buf_printf(err, "%s: '%s' is not a port number (0-65535)", what,
               colon + 1);
    return -1;
  }
  char host[64];
  size_t hlen = (size_t)(colon - text);
  if (hlen >= sizeof host) {
    buf_printf(err, "%s: the address in '%s' is too long", what, text);
    return -1;
  }
  memcpy(host, text, hlen);
  host[hlen] = '\0';
  if (host[0] == '[') {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
    if (hlen < 2 || host[hlen - 1] != ']') goto bad;
    host[hlen - 1] = '\0';
    if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1) goto bad;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)port);
    *len = sizeof *s6;
    return 0;
  }
  struct sockaddr_in *s4 = (struct sockaddr_in *)out;
  s4->sin_family = AF_INET;
  s4->sin_port = htons((uint16_t)port);
  *len = sizeof *s4;
  if (hlen == 0) {
    s4->sin_addr.s_addr = htonl(INADDR_ANY);
    return 0;
  }
  if (strcmp(host, "localhost") == 0) {
    s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return 0;
  }
  if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) return 0;
bad:
  buf_printf(err, "%s: '%.*s' is not a numeric address (an IPv4 address, "
             "[an IPv6 address], localhost, or nothing for every interface)",
             what, (int)hlen, text);
  return -1;
}

void netaddr_format(const struct sockaddr *sa, char *out, size_t n) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
    snprintf(out, n, "[%s]:%u", host, (unsigned)ntohs(s6->sin6_port));
  } else {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
    snprintf(out, n, "%s:%u", host, (unsigned)ntohs(s4->sin_port));
  }
}
