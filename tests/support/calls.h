/* What the fake Bot API received, asked from an end-to-end test: replies
 * by their text, the n-th call of a method, numbered replies counted, and
 * whole sequences of calls compared by value with what a test expects.
 * Every function reads the running test's server (harness_api()) and
 * fails the test through CHECK where it checks. */
#ifndef TGHOST_TESTS_CALLS_H
#define TGHOST_TESTS_CALLS_H

#include <stdbool.h>
#include <stddef.h>

#include "fakeapi.h"

/* The text of the first sendMessage that starts with prefix (malloc'd),
 * or NULL; _from: among the calls from index from on. */
char *reply_starting(const char *prefix);
char *reply_starting_from(size_t from, const char *prefix);
/* How many calls had params.text == text. */
size_t replies_with(const char *text);
/* How many sendMessage calls had text == text, or starting with
 * prefix. */
size_t sent_with(const char *text);
size_t sent_starting(const char *prefix);
/* The nth call (from 0) of method, or NULL. */
const struct fake_call *nth_call(const char *method, size_t nth);
/* Each reply "<prefix><n>" answers update "<n>" (scripts.h's
 * push_numbered and write_reply_script): checks every update in [0, n)
 * was answered exactly once. */
void check_each_answered_once(int n, const char *prefix);
/* Waits until tghost is polling (started, getMe done, nothing to do). */
void wait_polling(void);

/* The canonical text of json (malloc'd): object keys sorted, no white
 * space, strings re-escaped; NULL if it is not JSON. */
char *canonical_json(const char *json);

struct expected_call {
  const char *method;
  const char *params;   /* JSON; compared by value */
};

/* The calls the server received (getMe left out) are exactly
 * want[0..n). */
void check_calls(const struct expected_call *want, size_t n);
/* Method calls other than getMe. */
size_t handler_calls(void);

/* For run_until: have_handler_calls(&(struct count_wait){n}) is true once
 * handler_calls() >= n. */
struct count_wait {
  size_t want;
};
bool have_handler_calls(void *ud);

#endif
