#include "store/jobstore.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jobrec_free(struct jobrec *r) {
  free(r->id);
  free(r->schedule);
  free(r->body);
  free(r->token);
  memset(r, 0, sizeof *r);
}

static char *dup_or_null(const char *s) { return s ? xstrdup(s) : NULL; }

void jobrec_copy(struct jobrec *dst, const struct jobrec *src) {
  *dst = *src;
  dst->id = dup_or_null(src->id);
  dst->schedule = dup_or_null(src->schedule);
  dst->token = dup_or_null(src->token);
  dst->body = NULL;
  if (src->body) {
    dst->body = xmalloc(src->body_len + 1);
    memcpy(dst->body, src->body, src->body_len);
    dst->body[src->body_len] = '\0';
  }
}

struct jobreq *jobreq_new(enum jobreq_op op, jobreq_done_fn done, void *ud) {
  struct jobreq *r = xcalloc(1, sizeof *r);
  r->op = op;
  r->done = done;
  r->ud = ud;
  r->rec.due_ms = -1;
  r->next_ms = -1;
  r->oldest_due_ms = -1;
  r->stored = r->due = -1;
  return r;
}

void jobreq_free(struct jobreq *r) {
  if (!r) return;
  jobrec_free(&r->rec);
  free(r->prefix);
  free(r->error);
  for (size_t i = 0; i < r->nrecs; i++) jobrec_free(&r->recs[i]);
  free(r->recs);
  free(r->held);
  free(r);
}

void jobreq_set_error(struct jobreq *r, const char *fmt, ...) {
  struct buf b = BUF_INIT;
  va_list ap;
  va_start(ap, fmt);
  buf_vprintf(&b, fmt, ap);
  va_end(ap);
  free(r->error);
  r->error = buf_steal(&b, NULL);
}

void jobreq_add_rec(struct jobreq *r, const struct jobrec *rec) {
  r->recs = xrealloc(r->recs, (r->nrecs + 1) * sizeof *r->recs);
  jobrec_copy(&r->recs[r->nrecs++], rec);
}

/* --- completing from the loop --------------------------------------------- */

static void on_deferred(evutil_socket_t fd, short what, void *arg) {
  struct jobreq_deferred *d = arg;
  struct jobreq *r = d->head;
  d->head = d->tail = NULL;
  while (r) {
    struct jobreq *next = r->next;
    r->next = NULL;
    jobreq_complete(r);
    r = next;
  }
}

void jobreq_deferred_init(struct jobreq_deferred *d, struct event_base *base) {
  d->event = event_new(base, -1, 0, on_deferred, d);
  d->head = d->tail = NULL;
}

void jobreq_deferred_add(struct jobreq_deferred *d, struct jobreq *r) {
  r->next = NULL;
  if (d->tail) d->tail->next = r;
  else d->head = r;
  d->tail = r;
  event_active(d->event, 0, 0);
}

void jobreq_deferred_free(struct jobreq_deferred *d) {
  struct jobreq *r = d->head;
  while (r) {
    struct jobreq *next = r->next;
    jobreq_free(r);
    r = next;
  }
  d->head = d->tail = NULL;
  if (d->event) event_free(d->event);
  d->event = NULL;
}

char *jobstore_new_token(const char *owner) {
  static uint64_t counter;
  char tail[24];
  snprintf(tail, sizeof tail, ":%" PRIu64, ++counter);
  struct buf b = BUF_INIT;
  buf_printf(&b, "%s%s", owner, tail);
  return buf_steal(&b, NULL);
}
