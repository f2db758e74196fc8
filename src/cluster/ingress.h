/* The ingress of a cluster instance: updates from Telegram into the
 * partition streams, each batch in one atomic FCALL (tgc_ingest: the
 * XADDs, the dedup set and the stored offset), and only then confirmed to
 * Telegram. It wraps one of the ordinary update sources (source.h) as its
 * inner source and never hands anything to the runner: what it takes goes
 * to Redis, and the consumer (consumer.h) brings it back.
 *
 * Polling: only the holder of the ingress lease polls (ingress_take /
 * ingress_drop, from cluster.c). It starts from the offset stored in
 * Redis, ingests each batch fenced by its ingress epoch (a holder that
 * lost the lease has its batch refused and drops it unconfirmed), and
 * accepts the batch to the inner polling source only once Redis has
 * answered, so the next getUpdates confirms it: a crash before that loses
 * nothing (Telegram sends the batch again to the next holder), a crash
 * after it duplicates nothing (the stored offset and the dedup set skip
 * what was ingested). While Redis does not answer, the batch is retried
 * and no poll goes out: Telegram keeps the updates.
 *
 * Webhook: every instance listens and ingests what is POSTed to it
 * (unfenced: any instance may; the dedup set drops a second delivery) and
 * answers 200 only once Redis has answered. Only the lease holder calls
 * setWebhook (ingress_take starts the inner webhook source, which sets it);
 * the others serve without setting it. Every instance needs the same
 * secret, so a cluster webhook needs --webhook-secret-file.
 *
 * An update's partition comes from its cluster key: the script's
 * cluster.key function when it has one, else clusterkey_default.
 *
 * Layer: cluster. */
#ifndef TGHOST_INGRESS_H
#define TGHOST_INGRESS_H

#include <stdbool.h>

#include "base/buf.h"
#include "pipeline/source.h"
#include "store/redisconn.h"

struct ingress;

struct ingress_events {
  /* An unrecoverable error (a bad token, a webhook refused). */
  void (*on_fatal)(void *ud, const char *message);
  /* Redis refused a fenced ingest: the ingress lease holds another epoch. */
  void (*on_refused)(void *ud);
  /* A graceful stop of the ingress has finished. */
  void (*on_stopped)(void *ud);
};

/* p: what the inner source is built from (its run options choose polling
 * or the webhook: webhook_url set). The webhook listens from here on. NULL
 * with err when the inner source cannot be made. */
struct ingress *ingress_new(const struct update_source_params *p,
                            struct redisconn *cmd, int partitions,
                            const struct ingress_events *ev, void *ud,
                            struct buf *err);
void ingress_free(struct ingress *g);
bool ingress_is_webhook(const struct ingress *g);

/* This instance holds the ingress lease at epoch: poll (from the stored
 * offset) or set the webhook. */
void ingress_take(struct ingress *g, long long epoch);
/* The lease is gone: stop polling at once, confirming nothing (the batch
 * being ingested is dropped); a webhook keeps serving. */
void ingress_drop(struct ingress *g);
/* A graceful stop: no new poll; a webhook answers what it holds 503; the
 * batch being ingested finishes first. on_stopped follows. */
void ingress_stop(struct ingress *g);
/* Hot reload: the inner source's options. */
void ingress_reconfigure(struct ingress *g, const struct run_options *o);
/* Redis is reachable again: retry a failed batch now. */
void ingress_retry(struct ingress *g);

#endif
