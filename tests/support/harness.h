/* End-to-end test support: runs tghost as a child process against the
 * fake Bot API server, on one event loop with it, and captures its output.
 *
 * Tests are written as TEST(name) { ... } (tests/testreg.h); each test
 * binary runs the one named on its command line, so ctest lists them one
 * by one. */
#ifndef TGHOST_TESTS_HARNESS_H
#define TGHOST_TESTS_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>

#include "base/buf.h"
#include "fakeapi.h"

/* The token every test uses; no output may contain it. */
#define TEST_TOKEN "424242:TEST-secret-token_xyz"

#define CHECK_ON_FAILURE() harness_dump_output()
#include "check.h"
#include "testreg.h"

/* What every end-to-end test starts with (harness_main.c calls it). */
void harness_before_test(void);

/* The loop and the fake server of the running test (created on first use). */
struct event_base *harness_base(void);
struct fakeapi *harness_api(void);

/* Writes a file into the test's temporary directory; returns its path
 * (owned by the harness). */
const char *harness_write(const char *name, const char *content);
const char *harness_tmpdir(void);

struct proc;
/* Starts tghost with the script and extra arguments (NULL-terminated),
 * BOT_TOKEN=TEST_TOKEN and --api-root of the fake server. */
struct proc *proc_start(const char *script, const char *const *args);
/* As proc_start, with env entries ("NAME=value", NULL-terminated) replacing
 * the defaults (no BOT_TOKEN unless given). */
struct proc *proc_start_env(const char *script, const char *const *args,
                            const char *const *env, bool with_api_root);
/* Starts any program (argv[0] looked up in PATH) with its output captured,
 * env entries added as proc_start_env does; the benchmarks run the peers'
 * bots with it. */
struct proc *proc_start_command(const char *const *argv,
                                const char *const *env);
/* The tghost binary the harness runs. */
const char *harness_tghost_binary(void);
/* Forgets a process (killed first if it still runs) and frees it. */
void proc_free(struct proc *p);
bool proc_exited(const struct proc *p);
int proc_status(const struct proc *p);      /* exit code, or 128+signal */
const char *proc_stdout(const struct proc *p);
const char *proc_stderr(const struct proc *p);
int proc_pid(const struct proc *p);
void proc_kill(struct proc *p, int sig);
/* Runs the loop until the process exits or timeout; false on timeout. */
bool proc_wait(struct proc *p, int timeout_ms);
/* Checks that neither output of p contains the token, and that no
 * sanitizer reported anything (leaks, UB, memory errors). */
void proc_check_clean(const struct proc *p);
/* Peak resident set size (VmHWM) in KiB, while it runs. */
long proc_peak_rss_kib(const struct proc *p);
/* Its resident memory now (VmRSS), in KiB, or -1. */
long proc_rss_kib(const struct proc *p);
/* Its CPU time (user + system) so far, in seconds. */
double proc_cpu_seconds(const struct proc *p);

/* Runs the loop until the fake server has received n calls of method;
 * fails the test after timeout_ms. */
void wait_calls(const char *method, size_t n, int timeout_ms);
/* True if some call to the fake server had params.text == text. */
bool api_sent_text(const char *text);
/* SIGTERM, then checks for exit status 0 and clean output. */
void proc_stop_cleanly(struct proc *p);
/* The same within ms milliseconds, and prints how long it took: for a
 * stop that must not wait for anything (a guard's escapes, for one, must
 * leave the loop free). */
void proc_stop_within(struct proc *p, int ms);

/* Runs the loop until p's stderr shows needle; fails the test if it does
 * not within timeout_ms (or p exits first). */
void wait_stderr(struct proc *p, const char *needle, int timeout_ms);
/* The same without failing: true if p's stderr shows needle within
 * timeout_ms (it stops waiting when p exits). */
bool run_until_stderr(struct proc *p, const char *needle, int timeout_ms);
/* How many times needle occurs in text. */
size_t count_in(const char *text, const char *needle);

/* Runs the loop until pred(ud) is true or timeout_ms passes. */
bool run_until(bool (*pred)(void *ud), void *ud, int timeout_ms);
/* Runs the loop for ms milliseconds. */
void run_for(int ms);
uint64_t harness_now_ms(void);

void harness_dump_output(void);
/* Kills the processes still running, frees the fake server and removes
 * the temporary folder (harness_main registers it with atexit). */
void harness_cleanup(void);

#endif
