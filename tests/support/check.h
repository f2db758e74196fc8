/* CHECK(cond, fmt, ...): a failed check names its line, the condition and
 * a message, runs CHECK_ON_FAILURE() (a test file defines it before
 * including this to add what it knows: the process output, a seed) and
 * exits 1. */
#ifndef TGHOST_TESTS_CHECK_H
#define TGHOST_TESTS_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#ifndef CHECK_ON_FAILURE
#define CHECK_ON_FAILURE() ((void)0)
#endif

#define CHECK(cond, ...)                                                   \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "%s:%d: check failed: %s\n  ", __FILE__, __LINE__,   \
              #cond);                                                      \
      fprintf(stderr, __VA_ARGS__);                                        \
      fprintf(stderr, "\n");                                               \
      CHECK_ON_FAILURE();                                                  \
      exit(1);                                                             \
    }                                                                      \
  } while (0)

#endif
