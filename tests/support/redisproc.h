/* A redis-server of the test's own (Debian's), on a free loopback port and
 * a unix socket in a folder the caller names, with the persistence
 * settings the test asks for; and a synchronous hiredis client to look at
 * what it holds. Unit tests wait with redisproc_wait (it sleeps); e2e tests
 * poll redisproc_ready from their loop (run_until), so the fake Bot API
 * keeps answering meanwhile.
 *
 * A test that needs Redis calls redisproc_need() first: it exits 77
 * (skipped) when redis-server is not installed. Servers still running
 * when the test process exits are killed (atexit). */
#ifndef TGHOST_TESTS_REDISPROC_H
#define TGHOST_TESTS_REDISPROC_H

#include <stdbool.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

struct redisproc {
  pid_t pid;
  int port;                  /* chosen at the first start, kept after */
  char dir[256];             /* its data folder (appendonly files) */
  char url[300];             /* redis://127.0.0.1:PORT */
};

void redisproc_need(void);
/* Starts redis-server with dir as its folder (created if missing) and the
 * extra arguments (NULL-terminated: "--appendonly", "yes", ...); without
 * any, no persistence. A restarted server keeps its port and folder (so
 * an append-only file is read back). */
void redisproc_start(struct redisproc *r, const char *dir,
                     const char *const *extra);
/* True once it accepts connections and has loaded its data. */
bool redisproc_ready(struct redisproc *r);
/* Sleeps until ready, failing the test after timeout_ms. */
void redisproc_wait(struct redisproc *r, int timeout_ms);
/* Sends sig (SIGKILL: a crash; SIGTERM: a clean shutdown) and reaps it;
 * SIGSTOP / SIGCONT pause it and go on without reaping. */
void redisproc_signal(struct redisproc *r, int sig);
/* A blocking client (the test's own view), or exits the test. */
redisContext *redisproc_connect(const struct redisproc *r);
/* Runs a command (printf-style, hiredis's format) and returns the reply,
 * failing the test when there is none. */
redisReply *redisproc_cmd(redisContext *c, const char *fmt, ...);

#endif
