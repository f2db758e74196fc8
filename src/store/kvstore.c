#include "store/kvstore.h"

#include <stdlib.h>

static void on_deferred(evutil_socket_t fd, short what, void *arg) {
  struct kv_deferred *d = arg;
  /* Requests a completion adds now go to the next pass. */
  struct kvreq *r = d->head;
  d->head = d->tail = NULL;
  while (r) {
    struct kvreq *next = r->next;
    r->next = NULL;
    kvreq_complete(r);
    r = next;
  }
}

void kv_deferred_init(struct kv_deferred *d, struct event_base *base) {
  d->event = event_new(base, -1, 0, on_deferred, d);
  d->head = d->tail = NULL;
}

void kv_deferred_add(struct kv_deferred *d, struct kvreq *req) {
  req->next = NULL;
  if (d->tail) {
    d->tail->next = req;
  } else {
    d->head = req;
    event_active(d->event, EV_TIMEOUT, 0);
  }
  d->tail = req;
}

void kv_deferred_free(struct kv_deferred *d) {
  struct kvreq *r = d->head;
  while (r) {
    struct kvreq *next = r->next;
    kvreq_free(r);
    r = next;
  }
  d->head = d->tail = NULL;
  if (d->event) event_free(d->event);
  d->event = NULL;
}
