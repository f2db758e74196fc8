/* The memory backend: tghost.storage.memory(name), a src/store/memstore.h
 * map per name that the host keeps for the life of the process (so its
 * contents outlive every hot reload).
 *
 * Layer: stores. Implements src/store/kvstore.h: submitted requests are
 * done at once, on the loop thread (so compare-and-set is atomic), and
 * handed back from the loop; run_now does them within the call, which is
 * what a script's memory call uses. Namespaces are ignored: a store is
 * its name. Listing visits every entry of the store (memory stores are
 * small and local; a page of n keys out of N costs O(N log n)). */
#ifndef TGHOST_MEMKV_H
#define TGHOST_MEMKV_H

#include "store/kvstore.h"

extern const struct kv_backend memkv_backend;

#endif
