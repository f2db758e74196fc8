/* Runs a program on a pseudo-terminal, as a person at a terminal would:
 * type into it, read what it shows. For tests of the interactive sandbox;
 * needs nothing but libc (forkpty), so CI needs no tmux.
 *
 * A pty that is not freed when the test process exits (a failed CHECK)
 * has its output printed to stderr and its process killed. */
#ifndef TGHOST_TESTS_PTYRUN_H
#define TGHOST_TESTS_PTYRUN_H

#include <stdbool.h>
#include <stddef.h>

struct pty;

/* Starts argv[0] with argv on a new pty; env entries ("NAME=value") are
 * added to the environment. */
struct pty *pty_start(const char *const *argv, const char *const *env);
/* Writes text to the terminal as if typed ("\r" is Enter, "\x04" Ctrl-D,
 * "\x03" Ctrl-C). */
void pty_type(struct pty *p, const char *text);
/* Reads the screen until what was shown since `since` (a byte offset into
 * the output; 0 for the start) contains text; false after timeout_ms. */
bool pty_wait_for(struct pty *p, const char *text, size_t since,
                  int timeout_ms);
/* Everything shown so far, and its length. */
const char *pty_output(const struct pty *p);
size_t pty_output_len(const struct pty *p);
/* Waits for the program to exit (reading the screen meanwhile); false
 * after timeout_ms. */
bool pty_wait_exit(struct pty *p, int timeout_ms);
int pty_status(const struct pty *p);   /* exit code, or 128+signal */
void pty_free(struct pty *p);

#endif
