/* Listening addresses as the command line writes them: "ADDR:PORT".
 *
 *   127.0.0.1:8080   an IPv4 address
 *   [::1]:8080       an IPv6 address, in brackets
 *   localhost:8080   127.0.0.1
 *   :8080            every interface (0.0.0.0)
 *
 * Only numeric addresses (and "localhost"): resolving a name would block
 * the loop, and a server binds to an interface, not to a name. Port 0
 * asks the kernel for a free port (the one bound is logged).
 *
 * Layer: base (no loop). */
#ifndef TGHOST_NETADDR_H
#define TGHOST_NETADDR_H

#include <stddef.h>
#include <sys/socket.h>

#include "base/buf.h"

/* Parses text into *out (its length in *len). Returns 0, or -1 with err
 * saying why (what names the option, for the message). */
int netaddr_parse(const char *text, const char *what,
                  struct sockaddr_storage *out, socklen_t *len,
                  struct buf *err);
/* "127.0.0.1:8080" or "[::1]:8080". */
void netaddr_format(const struct sockaddr *sa, char *out, size_t n);

#endif
