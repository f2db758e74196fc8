/* A redis-server of the test's own, for end-to-end tests that need Redis:
 * Debian's redis-server on a free loopback port, without persistence,
 * killed when the test exits. A test that needs it is skipped (exit 77)
 * where redis-server is not installed. */
#ifndef TGHOST_TESTS_REDISRUN_H
#define TGHOST_TESTS_REDISRUN_H

/* Exits 77 (skipped) unless redis-server is on the PATH. */
void redisrun_need(void);
/* Starts one (if not started yet) and returns its port. */
int redisrun_start(void);

#endif
