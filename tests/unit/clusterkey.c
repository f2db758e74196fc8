/* The cluster key of an update (src/cluster/clusterkey.c): the chat, else
 * the user, else the update id, for every kind of update the Bot API
 * sends, matching what ctx.chat and ctx.from say in Lua; and the
 * partition hash: fixed values (it is part of the data format: a change
 * would move keys between partitions), spread over partitions. */
#include <stdio.h>
#include <string.h>

#include "cluster/clusterkey.h"
#include "check.h"
#include "testreg.h"

static void expect(const char *json, enum clusterkey_kind kind,
                   const char *key) {
  struct buf k = BUF_INIT;
  enum clusterkey_kind got = clusterkey_default(json, strlen(json), &k);
  CHECK(got == kind, "%s: kind %d, expected %d", json, got, kind);
  if (key)
    CHECK(k.data && strcmp(k.data, key) == 0, "%s: key '%s', expected '%s'",
          json, k.data ? k.data : "", key);
  buf_free(&k);
}

TEST(default_keys) {
  expect("{\"update_id\":1,\"message\":{\"message_id\":5,\"from\":{\"id\":7},"
         "\"chat\":{\"id\":-1001234567890,\"type\":\"supergroup\"}}}",
         CLUSTERKEY_CHAT, "-1001234567890");
  expect("{\"message\":{\"chat\":{\"type\":\"private\",\"id\":42}},"
         "\"update_id\":2}",
         CLUSTERKEY_CHAT, "42");
  expect("{\"update_id\":3,\"edited_message\":{\"chat\":{\"id\":9}}}",
         CLUSTERKEY_CHAT, "9");
  expect("{\"update_id\":4,\"channel_post\":{\"chat\":{\"id\":-100}}}",
         CLUSTERKEY_CHAT, "-100");
  /* A callback query: its message's chat, else the user who pressed. */
  expect("{\"update_id\":5,\"callback_query\":{\"id\":\"x\",\"from\":{\"id\":7},"
         "\"message\":{\"chat\":{\"id\":77}},\"data\":\"d\"}}",
         CLUSTERKEY_CHAT, "77");
  expect("{\"update_id\":6,\"callback_query\":{\"id\":\"x\",\"from\":{\"id\":7},"
         "\"inline_message_id\":\"m\"}}",
         CLUSTERKEY_USER, "7");
  expect("{\"update_id\":7,\"inline_query\":{\"id\":\"q\",\"from\":{\"id\":8},"
         "\"query\":\"\"}}",
         CLUSTERKEY_USER, "8");
  expect("{\"update_id\":8,\"poll_answer\":{\"poll_id\":\"p\",\"user\":"
         "{\"id\":11},\"option_ids\":[0]}}",
         CLUSTERKEY_USER, "11");
  expect("{\"update_id\":9,\"chat_member\":{\"chat\":{\"id\":-5},\"from\":"
         "{\"id\":3}}}",
         CLUSTERKEY_CHAT, "-5");
  expect("{\"update_id\":10,\"message_reaction\":{\"chat\":{\"id\":12},"
         "\"user\":{\"id\":3}}}",
         CLUSTERKEY_CHAT, "12");
  expect("{\"update_id\":11,\"business_connection\":{\"id\":\"b\",\"user\":"
         "{\"id\":13}}}",
         CLUSTERKEY_USER, "13");
  /* No chat, no user: the update itself, apart from every chat. */
  expect("{\"update_id\":12,\"poll\":{\"id\":\"p\",\"question\":\"?\"}}",
         CLUSTERKEY_UPDATE, "u:12");
  expect("{\"update_id\":13}", CLUSTERKEY_UPDATE, "u:13");
  /* An id that is not an integer is not used. */
  expect("{\"update_id\":14,\"message\":{\"chat\":{\"id\":1.5},"
         "\"from\":{\"id\":2}}}",
         CLUSTERKEY_USER, "2");
  expect("{\"message\":{\"chat\":{\"id\":1}}}", CLUSTERKEY_INVALID, NULL);
  expect("[1]", CLUSTERKEY_INVALID, NULL);
  expect("{\"update_id\":1,", CLUSTERKEY_INVALID, NULL);
}

TEST(partition_hash_is_fixed) {
  /* Pinned: every instance of every version must agree. */
  static const struct {
    const char *key;
    int p64;
  } pinned[] = {{"42", 2}, {"-1001234567890", 10}, {"u:12", 27}, {"", 27}};
  for (size_t i = 0; i < sizeof pinned / sizeof *pinned; i++) {
    int p = clusterkey_partition(pinned[i].key, strlen(pinned[i].key), 64);
    CHECK(p == pinned[i].p64, "'%s' went to partition %d, not %d: the "
          "partition hash changed (it must not: see clusterkey.h)",
          pinned[i].key, p, pinned[i].p64);
  }
}

TEST(partitions_spread) {
  enum { P = 64, KEYS = 64000 };
  int count[P] = {0};
  char key[32];
  for (int i = 0; i < KEYS; i++) {
    int n = snprintf(key, sizeof key, "%d", 100000000 + i * 7);
    int p = clusterkey_partition(key, (size_t)n, P);
    CHECK(p >= 0 && p < P, "partition %d", p);
    count[p]++;
  }
  for (int p = 0; p < P; p++)
    CHECK(count[p] > KEYS / P * 8 / 10 && count[p] < KEYS / P * 12 / 10,
          "partition %d got %d of %d keys", p, count[p], KEYS);
  CHECK(clusterkey_partition("7", 1, 1) == 0, "one partition");
}
