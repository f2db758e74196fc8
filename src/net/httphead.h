/* A request's head (its request line and header lines, up to the empty
 * line), found in the bytes a client sends and checked strictly before any
 * server of tghost takes the request (httpd.h).
 *
 * Strict where HTTP/1.1 (RFC 9112) lets a server be, so that where one
 * request ends and the next begins is never in doubt, and a proxy in front
 * cannot read a request one way and tghost another:
 *   - the request line is METHOD SP TARGET SP HTTP/1.0|HTTP/1.1, nothing
 *     else (TRACE, CONNECT and unknown methods get 501; another version
 *     505);
 *   - a header is NAME ":" OWS VALUE OWS; a name of token characters, no
 *     space before the colon, no control character (NUL included) in a
 *     value, no line folding (400);
 *   - Content-Length is 1 to 18 digits and nothing else; several are
 *     allowed only if they are equal; with Transfer-Encoding it is refused
 *     (400); Transfer-Encoding may only be one "chunked" (501 otherwise);
 *     a HEAD may not have a body (400);
 *   - Expect may only be 100-continue (417);
 *   - at most HTTPHEAD_MAX_FIELDS header lines (431).
 * Lines end with LF or CRLF.
 *
 * Layer: HTTP (pure C: no loop, no I/O). */
#ifndef TGHOST_HTTPHEAD_H
#define TGHOST_HTTPHEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTPHEAD_MAX_FIELDS 64
/* The longest Content-Length read: 18 digits cannot overflow 64 bits. */
#define HTTPHEAD_MAX_LENGTH_DIGITS 18

enum httphead_method {
  HTTPHEAD_GET,
  HTTPHEAD_HEAD,
  HTTPHEAD_POST,
  HTTPHEAD_PUT,
  HTTPHEAD_DELETE,
  HTTPHEAD_OPTIONS,
  HTTPHEAD_PATCH,
};

struct httphead_field {
  const char *name, *value;     /* into the parsed text; not terminated */
  size_t name_len, value_len;   /* the value without surrounding spaces */
};

struct httphead {
  enum httphead_method method;
  const char *target;           /* not terminated */
  size_t target_len;
  int minor;                    /* HTTP/1.minor */
  int64_t content_length;       /* -1: none */
  bool chunked;                 /* Transfer-Encoding: chunked */
  bool expect_continue;         /* Expect: 100-continue */
  bool keep_alive;              /* the client keeps the connection open
                                   after this request (version, Connection) */
  size_t nfields;
  struct httphead_field fields[HTTPHEAD_MAX_FIELDS];
};

/* Finds the end of a head in a stream fed piece by piece. Start with
 * {0}; httphead_scan returns how many bytes of the piece belong to the
 * head: all n while it goes on, fewer (and done set) once the empty line
 * that ends it has been seen. size counts the head's bytes so far. */
struct httphead_scan {
  size_t size;
  size_t line_len;              /* bytes of the current line so far */
  bool line_cr;                 /* the current line so far is "\r" */
  bool done;
};
size_t httphead_scan(struct httphead_scan *s, const char *piece, size_t n);

/* Parses and checks a whole head (text[0..len) ends with its empty line).
 * Returns 0 with h filled in (pointing into text), or the HTTP status
 * that refuses it (400, 417, 431, 501 or 505) with why set to a short reason. */
int httphead_parse(struct httphead *h, const char *text, size_t len,
                   const char **why);

/* The value of the first header named name (any case), or NULL. */
const char *httphead_field(const struct httphead *h, const char *name,
                           size_t *len);

const char *httphead_method_name(enum httphead_method m);

#endif
