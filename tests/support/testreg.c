/* The registry behind TEST(name) (tests/testreg.h). */
#include "testreg.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_TESTS 256

static struct {
  const char *name;
  void (*run)(void);
} tests[MAX_TESTS];
static int ntests;

void test_register(const char *name, void (*run)(void)) {
  if (ntests == MAX_TESTS) {
    fprintf(stderr, "testreg: more than %d tests in one binary\n", MAX_TESTS);
    exit(2);
  }
  tests[ntests].name = name;
  tests[ntests].run = run;
  ntests++;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int test_main(int argc, char **argv, void (*before_each)(void)) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s TEST\ntests:", argv[0]);
    for (int i = 0; i < ntests; i++) fprintf(stderr, " %s", tests[i].name);
    fprintf(stderr, "\n");
    return 2;
  }
  for (int i = 0; i < ntests; i++) {
    if (strcmp(tests[i].name, argv[1]) != 0) continue;
    if (before_each) before_each();
    double start = now_s();
    tests[i].run();
    fprintf(stderr, "ok %s (%.2f s)\n", tests[i].name, now_s() - start);
    return 0;
  }
  fprintf(stderr, "no test named %s\n", argv[1]);
  return 2;
}
