/* Server-sent events: a push parser for the text/event-stream format, by
 * the WHATWG HTML standard's rules ("Interpreting an event stream").
 *
 * Bytes go in as they arrive, split anywhere (inside a line, between a CR
 * and its LF, inside a UTF-8 sequence); events come out through a
 * callback, each once its blank line has been read:
 *   - lines end with CRLF, LF or CR; a UTF-8 BOM at the very start is
 *     dropped; bytes that are not UTF-8 become U+FFFD, as the standard's
 *     UTF-8 decode does, so every string handed out is valid UTF-8;
 *   - "field: value" (one space after the colon is dropped), "field"
 *     alone (an empty value), ":comment" (ignored);
 *   - data lines are joined with LF; an event with no data line is not
 *     dispatched; the type defaults to "message"; the last event ID
 *     persists from event to event (an id containing NUL is ignored);
 *   - retry: with ASCII digits only sets the reconnection time;
 *   - at the end of the stream an event not ended by a blank line is
 *     discarded (sse_finish).
 *
 * Memory is bounded: a line, or an event's data, longer than max_event
 * bytes fails the stream (SSE_TOO_LARGE) instead of growing without
 * limit. Pure C, no I/O; one parser per stream. */
#ifndef TGHOST_SSE_H
#define TGHOST_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"

struct sse_event {
  const char *type;   /* "message" unless an event: field said otherwise */
  size_t type_len;
  const char *data;
  size_t data_len;
  const char *id;     /* the last event ID ("" if none was ever set) */
  size_t id_len;
  long retry_ms;      /* the reconnection time, -1 if never set */
};

/* Called for each event; the strings are valid until it returns. Return
 * true to go on, false to stop sse_feed after this event. */
typedef bool (*sse_event_fn)(void *ud, const struct sse_event *ev);

struct sse_parser {
  struct buf line;          /* the line being read, raw bytes */
  struct buf data;          /* the event's data buffer */
  struct buf type;          /* the event type buffer */
  struct buf last_id;       /* the last event ID buffer */
  struct buf text;          /* scratch: a line decoded */
  long retry_ms;
  size_t max_event;
  unsigned bom_seen;        /* BOM bytes matched at the start (0-3) */
  bool started;             /* past the BOM check */
  bool after_cr;            /* the last byte was a CR: skip one LF */
  bool failed;
};

enum sse_status {
  SSE_OK,          /* every byte was used */
  SSE_STOPPED,     /* the callback asked to stop; *used says how far */
  SSE_TOO_LARGE,   /* a line or an event passed max_event */
};

#define SSE_DEFAULT_MAX_EVENT (1u << 20)

void sse_init(struct sse_parser *p, size_t max_event);
void sse_free(struct sse_parser *p);
/* Reads len bytes (or fewer: see SSE_STOPPED; *used is how many were
 * consumed, and the caller feeds the rest later). */
enum sse_status sse_feed(struct sse_parser *p, const char *bytes, size_t len,
                         size_t *used, sse_event_fn fn, void *ud);
/* The stream ended: what was not yet dispatched is dropped, as the
 * standard says. The parser may be fed again as a new stream's. */
void sse_finish(struct sse_parser *p);

/* Appends bytes to out as valid UTF-8, each ill-formed sequence replaced
 * by U+FFFD (one per maximal subpart, as WHATWG's decoder does). */
void sse_utf8_clean(const char *bytes, size_t len, struct buf *out);

#endif
