/* The sequentialize map: per-key FIFO queues of holders, so that holders
 * sharing a key run one after another, in the order they asked, while
 * holders with disjoint keys never wait for each other. Pure C: no Lua, no
 * loop, so it can be tested and measured on its own.
 *
 * A holder is one unit of work (a job). seqmap_acquire() queues it at the
 * tail of each key's queue; it may run once it is at the head of every
 * queue it is in. Releasing a holder (or one frame of it) takes it out of
 * its queues; whoever becomes the head of a queue and is then at the head
 * of all of its queues is granted, through the on_grant callback.
 *
 * Why queues and not "the last holder of each key": a holder can leave
 * while it still waits (its job was cancelled or timed out). With queues,
 * leaving from the middle of a queue promotes nobody, so the ones behind it
 * still wait for the ones before it; a "last holder" chain would let them
 * overtake a predecessor that is still running.
 *
 * Keys are byte strings or 64-bit integers; a string key and an integer key
 * never match. A key exists only while some holder is queued on it: memory
 * is proportional to the (holder, key) pairs in flight (entries and links
 * are recycled through free lists that never exceed the live count by more
 * than a constant; the hash table, a hashmap seeded against keys chosen
 * by users, shrinks as keys go).
 *
 * Cost: acquire is O(keys given + keys the holder already has); releasing
 * is O(keys the holder has); both amortized O(1) per key (hash table
 * resizes are amortized).
 *
 * Frames: each acquire opens a frame; seqmap_release_frame() leaves only
 * the queues that frame joined. A key the holder already has (from an
 * earlier frame, or twice in one call) is not queued again, so nested
 * acquires never wait for themselves. A holder may have at most one frame
 * that still waits: acquiring while waiting is refused, which is what keeps
 * "already has the key" meaning "holds it".
 *
 * Stepping aside: a holder that will wait a long time for something only a
 * later arrival can bring (a conversation waiting for a user's next
 * message) leaves every queue it is in without giving its keys up for
 * good: seqmap_step_aside() lets the holders behind it run, and
 * seqmap_rejoin() queues it again at the tail of each of its keys, with
 * the same frames, so its closers still release what they acquired. A key
 * stays in the map while a holder that stepped aside has it (its entry is
 * pinned), which costs nothing per step: no link is freed or made. */
#ifndef TGHOST_SEQMAP_H
#define TGHOST_SEQMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/hashmap.h"
#include "base/qlist.h"

enum seqmap_key_type { SEQMAP_STRING = 1, SEQMAP_INTEGER = 2 };

struct seqmap_key {
  enum seqmap_key_type type;
  const char *str;              /* SEQMAP_STRING: len bytes, not copied */
  size_t len;
  int64_t num;                  /* SEQMAP_INTEGER */
};

struct seqmap_link;
struct seqmap_entry;

/* Caller-owned; zero it with seqmap_holder_init(). */
struct seqmap_holder {
  struct seqmap_link *links;    /* every queue it is in, newest first */
  size_t nlinks;
  size_t waiting;               /* queues it is in but not at the head of */
  unsigned frames;              /* the last frame id handed out */
  bool aside;                   /* stepped out of its queues, links kept */
  void *ud;                     /* the caller's */
};

struct seqmap;
/* h is now at the head of all of its queues. Called from inside a release:
 * it must not call back into the map. */
typedef void (*seqmap_grant_fn)(struct seqmap_holder *h, void *ud);

struct seqmap {
  struct hashmap keys;          /* of seqmap_entry */
  size_t nlinks;                /* links in use */
  uint64_t stamp;
  seqmap_grant_fn on_grant;
  void *ud;
  /* Free lists: recycled before malloc, trimmed to the live count plus a
   * constant. */
  struct hashmap_node *free_entries;   /* linked by next */
  size_t nfree_entries;
  struct seqmap_link *free_links;
  size_t nfree_links;
};

/* seed randomizes the hash (pass something unpredictable in production:
 * keys may come from users). */
void seqmap_init(struct seqmap *m, uint64_t seed, seqmap_grant_fn on_grant,
                 void *ud);
/* Frees the map, its free lists and every key still present; holders still
 * queued must not be used with it afterwards. */
void seqmap_free(struct seqmap *m);

void seqmap_holder_init(struct seqmap_holder *h, void *ud);

/* Queues h on each of the n keys it does not have yet and opens a frame.
 * Returns the frame id (> 0) and sets *waiting to the number of queues h
 * is not at the head of (0: h may run now). Returns 0 and does nothing if
 * h still waits from an earlier acquire or has stepped aside. */
unsigned seqmap_acquire(struct seqmap *m, struct seqmap_holder *h,
                        const struct seqmap_key *keys, size_t n,
                        size_t *waiting);
/* Takes h out of the queues that frame joined (granting whoever that lets
 * run). An unknown or already released frame is a no-op. */
void seqmap_release_frame(struct seqmap *m, struct seqmap_holder *h,
                          unsigned frame);
/* Takes h out of every queue. h may be reused or freed afterwards. */
void seqmap_release(struct seqmap *m, struct seqmap_holder *h);

/* Takes h (which must not be waiting) out of every queue it is in,
 * granting whoever that lets run, and keeps its keys and frames for
 * seqmap_rejoin(). Returns how many keys it set aside (0: it had none, and
 * nothing changed). Releasing h or one of its frames while it is aside
 * drops those keys for good. */
size_t seqmap_step_aside(struct seqmap *m, struct seqmap_holder *h);
/* Queues a holder that stepped aside again at the tail of each of its
 * keys; returns the number of queues it is not at the head of (0: it holds
 * them all now; otherwise on_grant follows once it does). No-op returning
 * h->waiting for a holder that is not aside. */
size_t seqmap_rejoin(struct seqmap *m, struct seqmap_holder *h);

/* Keys with at least one holder queued or set aside. */
size_t seqmap_key_count(const struct seqmap *m);
/* Links in use (one per holder per key, queued or set aside). */
size_t seqmap_link_count(const struct seqmap *m);
/* Bytes the map holds from malloc (table, entries, links, free lists, long
 * keys). */
size_t seqmap_memory(const struct seqmap *m);

#endif
