#include "host.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generation.h"
#include "log.h"
#include "runner.h"

void host_fatal(struct host *h, const char *fmt, ...) {
  struct buf msg = BUF_INIT;
  va_list ap;
  va_start(ap, fmt);
  buf_vprintf(&msg, fmt, ap);
  va_end(ap);
  log_error("%s", msg.data);
  buf_free(&msg);
  if (h->exiting) return;
  h->exit_code = 1;
  h->exiting = true;
  if (h->runner) runner_abort(h->runner);
  sched_cancel_all(&h->sched, "cancelled: fatal error");
  event_base_loopexit(h->base, NULL);
}

void host_exit_if_idle(struct host *h) {
  if (h->exiting || h->loading) return;
  if (h->runner && !runner_finished(h->runner)) return;
  if (h->sched.live_jobs > 0) return;
  h->exiting = true;
  event_base_loopexit(h->base, NULL);
}
