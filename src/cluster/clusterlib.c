#include "cluster/clusterlib.h"

#include <inttypes.h>

static const char *const key_names[] = {
    [CK_META] = "meta",       [CK_OFFSET] = "offset", [CK_SEEN] = "seen",
    [CK_MEMBERS] = "members", [CK_DEAD] = "dead",     [CK_STATS] = "stats",
    [CK_LEASE] = "lease:",    [CK_EPOCH] = "epoch:",  [CK_STREAM] = "s:",
    [CK_COMMIT] = "c:",
};

void clusterlib_key(struct buf *out, int64_t bot_id, enum clusterlib_key k,
                    int partition) {
  buf_printf(out, "tgc:%" PRId64 ":%s", bot_id, key_names[k]);
  if (k < CK_LEASE) return;
  if (partition == CLUSTERLIB_INGRESS) buf_append_str(out, "in");
  else buf_printf(out, "%d", partition);
}
