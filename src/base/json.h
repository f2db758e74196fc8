/* A strict, allocation-free JSON pull reader, and writer helpers.
 *
 * The reader walks a buffer in place: callers ask what comes next and read
 * or skip it. It never builds a tree, so the source can split a getUpdates
 * response into per-update slices without decoding them, and luajson.c can
 * build Lua values directly. Errors are sticky: after the first one every
 * call fails and json_error() says what and where. */
#ifndef TGHOST_JSON_H
#define TGHOST_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define JSON_MAX_DEPTH 128

enum json_kind {
  JSON_INVALID,   /* end of input or a syntax error */
  JSON_NULL,
  JSON_FALSE,
  JSON_TRUE,
  JSON_NUMBER,
  JSON_STRING,
  JSON_ARRAY,
  JSON_OBJECT,
};

struct json_reader {
  const char *start, *p, *end;
  const char *error;          /* static message, NULL while all is well */
  size_t error_offset;
  int depth;
  unsigned char first[JSON_MAX_DEPTH + 1];
};

/* A string token as it appears in the input, without the quotes. */
struct json_slice {
  const char *ptr;
  size_t len;
  bool has_escapes;
};

struct json_number {
  bool is_integer;    /* no fraction or exponent and fits in int64 */
  int64_t i;
  double d;           /* always set */
};

void json_reader_init(struct json_reader *r, const char *s, size_t len);
enum json_kind json_peek(struct json_reader *r);

bool json_object_begin(struct json_reader *r);
/* Moves to the next member: true with its key, positioned at the value;
 * false after the closing brace or on error (check json_error). */
bool json_object_next(struct json_reader *r, struct json_slice *key);
bool json_array_begin(struct json_reader *r);
/* True when another element follows; false after ']' or on error. */
bool json_array_next(struct json_reader *r);

bool json_read_string(struct json_reader *r, struct json_slice *out);
bool json_read_number(struct json_reader *r, struct json_number *out);
bool json_read_bool(struct json_reader *r, bool *out);
bool json_read_null(struct json_reader *r);
/* Skips one whole value, validating it. If span is given, it receives the
 * value's extent in the input. */
bool json_skip(struct json_reader *r, struct json_slice *span);
/* Skips one whole value WITHOUT validating it: only strings and bracket
 * depth are followed, so that a value whose consumer validates it as it
 * reads (luajson_decode, the getUpdates split) is not checked twice. The
 * span may hold invalid JSON; false only when no end is found. */
bool json_skip_unchecked(struct json_reader *r, struct json_slice *span);
/* True if only whitespace is left. */
bool json_finish(struct json_reader *r);

const char *json_error(const struct json_reader *r);
size_t json_error_offset(const struct json_reader *r);

/* Decodes a string slice (escapes included) into out, appending. */
void json_unescape(const struct json_slice *s, struct buf *out);
/* True if the slice, escapes decoded, is the text literal. */
bool json_slice_is(const struct json_slice *s, const char *literal);

/* Writers append to a buffer. */
void json_write_string(struct buf *out, const char *s, size_t len);
/* Shortest text that reads back as the same double; false for NaN/inf. */
bool json_write_double(struct buf *out, double d);

/* Convenience for C callers: finds a top-level member of an object (the
 * first, when the name repeats). */
bool json_find_member(const char *json, size_t len, const char *name,
                      struct json_reader *at);
/* Whether the object has two or more top-level members named name (Lua's
 * decoder keeps the last, json_find_member finds the first). */
bool json_member_repeated(const char *json, size_t len, const char *name);

#endif
