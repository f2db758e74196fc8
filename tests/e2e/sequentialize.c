/* sequentialize end to end: tghost against the fake Bot API.
 *
 * Handlers reply with the text of their update as their last act, so a
 * reply's arrival and answer times at the server bound when the update's
 * protected section ran: for two updates that must not overlap, the
 * earlier reply is answered before the later one is received. */
#include <string.h>

#include "harness.h"

/* --- helpers ------------------------------------------------------------ */

struct reply {
  char *text;
  int64_t chat_id;
  uint64_t received_us, answered_us;
};

/* Every sendMessage received so far, in arrival order (free with
 * free_replies). */
static struct reply *collect_replies(size_t *n) {
  struct fakeapi *api = harness_api();
  size_t total = fakeapi_call_count(api), k = 0;
  struct reply *r = xcalloc(total ? total : 1, sizeof *r);
  for (size_t i = 0; i < total; i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "sendMessage") != 0) continue;
    r[k].text = fake_call_string(c, "text");
    if (!r[k].text) r[k].text = xstrdup("");
    r[k].chat_id = c->chat_id;
    r[k].received_us = c->received_us;
    r[k].answered_us = c->answered_us;
    k++;
  }
  *n = k;
  return r;
}

static void free_replies(struct reply *r, size_t n) {
  for (size_t i = 0; i < n; i++) free(r[i].text);
  free(r);
}

/* The reply whose text is exactly text, or NULL. */
static const struct reply *find_reply(const struct reply *r, size_t n,
                                      const char *text) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(r[i].text, text) == 0) return &r[i];
  return NULL;
}

/* The first reply whose text starts with prefix, or NULL. */
static const struct reply *find_prefix(const struct reply *r, size_t n,
                                       const char *prefix) {
  for (size_t i = 0; i < n; i++)
    if (strncmp(r[i].text, prefix, strlen(prefix)) == 0) return &r[i];
  return NULL;
}

static void wait_replies(size_t n, int timeout_ms) {
  wait_calls("sendMessage", n, timeout_ms);
}

static bool have_text(void *ud) { return api_sent_text(ud); }

static void wait_text(const char *text, int timeout_ms) {
  CHECK(run_until(have_text, (void *)text, timeout_ms),
        "no reply '%s' arrived", text);
}

/* xorshift, so a failure can be replayed. */
static uint64_t rng = 88172645463325252ULL;
static uint64_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static long random_delay(void *ud, const struct fake_call *call) {
  long max_ms = (long)(intptr_t)ud;
  if (strcmp(call->method, "sendMessage") != 0) return 0;
  return (long)(rnd() % (uint64_t)(max_ms + 1));
}

/* "<prefix><chat>:<n>" */
static bool parse_seq(const char *text, const char *prefix, long *chat,
                      long *n) {
  size_t pl = strlen(prefix);
  if (strncmp(text, prefix, pl) != 0) return false;
  return sscanf(text + pl, "%ld:%ld", chat, n) == 2;
}

/* --- order per chat ----------------------------------------------------- */

/* 20,000 updates over 50 chats (about 40 of one chat per getUpdates
 * batch), random handler and API delays, sequentialize(chat id): every
 * chat's replies come in update order and never overlap. The same bot
 * runs 2,000 updates of 10 other chats without sequentialize, to show the
 * check catches disorder when nothing prevents it. */
TEST(order_20k) {
  struct fakeapi *api = harness_api();
  enum { UPDATES = 20000, CHATS = 50, FREE = 2000, FREE_CHATS = 10 };
  fakeapi_set_delay_fn(api, random_delay, (void *)(intptr_t)3);
  const char *script = harness_write("order.lua",
      "local function handler(ctx)\n"
      "  tghost.sleep(math.random() * 0.004)\n"
      "  ctx:reply(ctx.msg.text)\n"
      "end\n"
      "local keyed = tghost.Composer()\n"
      "keyed.use(sequentialize(function(ctx) return ctx.chat.id end))\n"
      "keyed.on('message', handler)\n"
      "bot.filter(function(ctx) return ctx.chat.id >= 5000 end, handler)\n"
      "bot.use(keyed)\n"
      "run(bot)\n");
  static long next_n[CHATS + FREE_CHATS];
  char text[64];
  /* Interleave the free chats into the stream so they share batches. */
  for (int i = 0, f = 0; i < UPDATES; i++) {
    long c = (long)(rnd() % CHATS);
    snprintf(text, sizeof text, "k%ld:%ld", 1000 + c, next_n[c]++);
    fakeapi_push_text(api, 1000 + c, 1, text);
    if (i % (UPDATES / FREE) == 0 && f < FREE) {
      long fc = (long)(rnd() % FREE_CHATS);
      snprintf(text, sizeof text, "f%ld:%ld", 5000 + fc,
               next_n[CHATS + fc]++);
      fakeapi_push_text(api, 5000 + fc, 1, text);
      f++;
    }
  }
  uint64_t start = harness_now_ms();
  struct proc *p = proc_start(script, NULL);
  wait_replies(UPDATES + FREE, 120000);
  uint64_t elapsed = harness_now_ms() - start;
  run_for(100);

  size_t n;
  struct reply *r = collect_replies(&n);
  CHECK(n == UPDATES + FREE, "%zu replies for %d updates", n, UPDATES + FREE);
  static long expect[CHATS + FREE_CHATS];
  static const struct reply *prev[CHATS + FREE_CHATS];
  long violations = 0, free_disorder = 0;
  for (size_t i = 0; i < n; i++) {
    long chat, seq;
    bool keyed = parse_seq(r[i].text, "k", &chat, &seq);
    CHECK(keyed || parse_seq(r[i].text, "f", &chat, &seq),
          "unexpected reply '%s'", r[i].text);
    CHECK(r[i].chat_id == chat, "reply '%s' went to chat %lld", r[i].text,
          (long long)r[i].chat_id);
    long slot = keyed ? chat - 1000 : CHATS + chat - 5000;
    if (!keyed) {
      if (seq != expect[slot]) free_disorder++;
      if (seq >= expect[slot]) expect[slot] = seq + 1;
      continue;
    }
    if (seq != expect[slot]) {
      if (violations++ < 5)
        fprintf(stderr, "chat %ld: reply %ld came where %ld was due\n", chat,
                seq, expect[slot]);
    }
    expect[slot] = seq + 1;
    /* The previous update of the chat had its reply answered (it was done)
     * before this one's reply was sent. */
    if (prev[slot] && prev[slot]->answered_us > r[i].received_us) {
      if (violations++ < 5)
        fprintf(stderr, "chat %ld: '%s' overlapped '%s'\n", chat, r[i].text,
                prev[slot]->text);
    }
    prev[slot] = &r[i];
  }
  CHECK(violations == 0, "%ld order violations", violations);
  for (int c = 0; c < CHATS; c++)
    CHECK(expect[c] == next_n[c], "chat %d: %ld replies for %ld updates",
          1000 + c, expect[c], next_n[c]);
  CHECK(free_disorder > 0,
        "the chats without sequentialize were never out of order: the check "
        "cannot see disorder");
  fprintf(stderr, "order: %d sequentialized + %d free updates in %.2f s; "
          "%ld out-of-order replies in the free chats, 0 in the others\n",
          UPDATES, FREE, elapsed / 1000.0, free_disorder);
  free_replies(r, n);
  proc_stop_cleanly(p);
}

/* --- {chat id, user id}: the seeds' cross-chat example ------------------ */

struct xupdate {
  int64_t chat, user;
};

/* Alice writes in a group, then to the bot in private: with keys {chat,
 * user} the private message waits for the group one (they share Alice),
 * a group message of Carol waits too (it shares the group), Bob's private
 * message waits for nobody. Then 3,000 random updates of 30 users in 10
 * groups and their private chats: every pair sharing a chat or a user is
 * ordered, and disjoint ones did overlap. */
TEST(cross_chat) {
  struct fakeapi *api = harness_api();
  fakeapi_set_delay_fn(api, random_delay, (void *)(intptr_t)2);
  const char *script = harness_write("cross.lua",
      "bot.use(sequentialize(function(ctx)\n"
      "  return { ctx.chat and ctx.chat.id, ctx.from and ctx.from.id }\n"
      "end))\n"
      "bot.on('message', function(ctx)\n"
      "  local ms = tonumber(ctx.msg.text:match('d(%d+)$'))\n"
      "  tghost.sleep(ms and ms / 1000 or math.random() * 0.003)\n"
      "  ctx:reply(ctx.msg.text)\n"
      "end)\n"
      "run(bot)\n");
  enum { ALICE = 7, BOB = 8, CAROL = 9, GROUP = -100500 };
  fakeapi_push_text(api, GROUP, ALICE, "alice-group d400");
  fakeapi_push_text(api, ALICE, ALICE, "alice-private d0");
  fakeapi_push_text(api, BOB, BOB, "bob-private d0");
  fakeapi_push_text(api, GROUP, CAROL, "carol-group d0");
  enum { RANDOM = 3000, USERS = 30, GROUPS = 10 };
  static struct xupdate ups[RANDOM];
  char text[64];
  for (int i = 0; i < RANDOM; i++) {
    int64_t user = 1000 + (int64_t)(rnd() % USERS);
    int64_t chat = rnd() % 2 ? user : -2000 - (int64_t)(rnd() % GROUPS);
    ups[i].chat = chat;
    ups[i].user = user;
    snprintf(text, sizeof text, "x%d", i);
    fakeapi_push_text(api, chat, user, text);
  }
  struct proc *p = proc_start(script, NULL);
  wait_replies(4 + RANDOM, 60000);

  size_t n;
  struct reply *r = collect_replies(&n);
  const struct reply *ag = find_reply(r, n, "alice-group d400");
  const struct reply *ap = find_reply(r, n, "alice-private d0");
  const struct reply *bp = find_reply(r, n, "bob-private d0");
  const struct reply *cg = find_reply(r, n, "carol-group d0");
  CHECK(ag && ap && bp && cg, "a reply of the example is missing");
  CHECK(ap->received_us >= ag->answered_us,
        "Alice's private message ran before her group message was done");
  CHECK(cg->received_us >= ag->answered_us,
        "Carol's group message ran before Alice's was done");
  CHECK(bp->answered_us <= ag->received_us,
        "Bob's private message waited for Alice's group message");

  static const struct reply *by_index[RANDOM];
  for (size_t i = 0; i < n; i++) {
    int idx;
    if (sscanf(r[i].text, "x%d", &idx) == 1 && idx >= 0 && idx < RANDOM) {
      CHECK(!by_index[idx], "update x%d answered twice", idx);
      by_index[idx] = &r[i];
    }
  }
  long sharing = 0, overlapping_disjoint = 0;
  for (int j = 0; j < RANDOM; j++) {
    CHECK(by_index[j], "no reply for x%d", j);
    for (int i = 0; i < j; i++) {
      bool shares = ups[i].chat == ups[j].chat || ups[i].user == ups[j].user ||
                    ups[i].chat == ups[j].user || ups[i].user == ups[j].chat;
      if (shares) {
        sharing++;
        CHECK(by_index[i]->answered_us <= by_index[j]->received_us,
              "x%d (chat %lld, user %lld) ran before x%d (chat %lld, user "
              "%lld) was done", j, (long long)ups[j].chat,
              (long long)ups[j].user, i, (long long)ups[i].chat,
              (long long)ups[i].user);
      } else if (by_index[j]->received_us < by_index[i]->answered_us) {
        overlapping_disjoint++;
      }
    }
  }
  CHECK(overlapping_disjoint > 0, "updates with disjoint keys never overlapped");
  fprintf(stderr, "cross-chat: %ld ordered pairs, %ld overlapping disjoint "
          "pairs\n", sharing, overlapping_disjoint);
  free_replies(r, n);
  proc_stop_cleanly(p);
}

/* --- the session race --------------------------------------------------- */

/* The seeds' write-after-read hazard: each update reads a per-chat counter,
 * yields, and writes it back plus one. Ten chats run it without
 * sequentialize and lose increments; ten run it behind sequentialize(chat
 * id) and lose none. One bot, one run. */
TEST(session_race) {
  struct fakeapi *api = harness_api();
  enum { CHATS = 10, PER_CHAT = 40 };
  const char *script = harness_write("race.lua",
      "local counters = {}\n"
      "local function bump(ctx)\n"
      "  local id = ctx.chat.id\n"
      "  if ctx.msg.text == 'report' then\n"
      "    ctx:reply('count ' .. id .. ' ' .. (counters[id] or 0))\n"
      "    return\n"
      "  end\n"
      "  local v = counters[id] or 0            -- read the session\n"
      "  tghost.sleep(0.001 + math.random() * 0.004) -- e.g. a DB or API call\n"
      "  counters[id] = v + 1                   -- write it back\n"
      "  ctx:reply('bumped')\n"
      "end\n"
      "local safe = tghost.Composer()\n"
      "safe.use(sequentialize(function(ctx) return ctx.chat.id end))\n"
      "safe.on('message', bump)\n"
      "bot.filter(function(ctx) return ctx.chat.id < 200 end, bump)\n"
      "bot.use(safe)\n"
      "run(bot)\n");
  for (int i = 0; i < PER_CHAT; i++)
    for (int c = 0; c < CHATS; c++) {
      fakeapi_push_text(api, 100 + c, 1, "bump");   /* unprotected */
      fakeapi_push_text(api, 300 + c, 1, "bump");   /* sequentialized */
    }
  struct proc *p = proc_start(script, NULL);
  wait_replies(2 * CHATS * PER_CHAT, 60000);
  for (int c = 0; c < CHATS; c++) {
    fakeapi_push_text(api, 100 + c, 1, "report");
    fakeapi_push_text(api, 300 + c, 1, "report");
  }
  wait_replies(2 * CHATS * PER_CHAT + 2 * CHATS, 20000);
  size_t n;
  struct reply *r = collect_replies(&n);
  long lost_unprotected = 0;
  char prefix[48];
  for (int c = 0; c < CHATS; c++) {
    long count = -1;
    snprintf(prefix, sizeof prefix, "count %d ", 300 + c);
    const struct reply *rep = find_prefix(r, n, prefix);
    CHECK(rep && sscanf(rep->text + strlen(prefix), "%ld", &count) == 1,
          "no count for chat %d", 300 + c);
    CHECK(count == PER_CHAT, "sequentialized chat %d counted %ld of %d",
          300 + c, count, PER_CHAT);
    snprintf(prefix, sizeof prefix, "count %d ", 100 + c);
    rep = find_prefix(r, n, prefix);
    CHECK(rep && sscanf(rep->text + strlen(prefix), "%ld", &count) == 1,
          "no count for chat %d", 100 + c);
    CHECK(count >= 1 && count <= PER_CHAT, "chat %d counted %ld", 100 + c,
          count);
    lost_unprotected += PER_CHAT - count;
  }
  CHECK(lost_unprotected > 0,
        "the unprotected chats lost no increments: the race did not happen");
  fprintf(stderr, "session race: %ld of %d increments lost without "
          "sequentialize, 0 of %d with it\n", lost_unprotected,
          CHATS * PER_CHAT, CHATS * PER_CHAT);
  free_replies(r, n);
  proc_stop_cleanly(p);
}

/* --- failures, cancellation, key functions ------------------------------ */

/* A failing handler, a failing key function and a timed-out (cancelled)
 * update each release their successors; bad keys are clear errors that
 * reach bot.catch; 50.0 and 50 are one key, "60" and 60 are two; nested
 * sequentialize calls accumulate keys; nothing is left in the map. */
TEST(failures) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("fail.lua",
      "local seq = require('tghost.seq')\n"
      "bot.catch(function(err)\n"
      "  local e = tostring(err.error)\n"
      "  bot.api.sendMessage{ chat_id = 99, text = 'caught ' ..\n"
      "    err.ctx.msg.text .. ': ' .. e }\n"
      "end)\n"
      "local handle\n"
      "bot.filter(function(ctx) return ctx.msg.text == 'stats' end,\n"
      "  function(ctx)\n"
      "    local keys, links = seq.stats()\n"
      "    ctx:reply('keys ' .. keys .. ' links ' .. links ..\n"
      "              ' size ' .. handle:size())\n"
      "  end)\n"
      "-- keys taken without a to-be-closed variable: held until the job ends\n"
      "bot.filter(function(ctx) return ctx.msg.text:find('^raw') end,\n"
      "  function(ctx)\n"
      "    seq.acquire(777)\n"
      "    ctx:reply('start ' .. ctx.msg.text)\n"
      "    tghost.sleep(0.2)\n"
      "    ctx:reply('end ' .. ctx.msg.text)\n"
      "  end)\n"
      "-- a wait that cannot reach the host (inside a coroutine resumed\n"
      "-- from a sort comparator) is dropped; the update goes on\n"
      "bot.filter(function(ctx) return ctx.msg.text == 'holdkey' end,\n"
      "  function(ctx)\n"
      "    local held <close> = seq.acquire(901)\n"
      "    ctx:reply('holding'); tghost.sleep(0.3); ctx:reply('released')\n"
      "  end)\n"
      "bot.filter(function(ctx) return ctx.msg.text == 'dropkey' end,\n"
      "  function(ctx)\n"
      "    local ok, err = pcall(table.sort, { 2, 1 }, function(a, b)\n"
      "      coroutine.wrap(function() seq.acquire(901) end)()\n"
      "      return a < b\n"
      "    end)\n"
      "    ctx:reply('dropped ' .. tostring(not ok and err:find('cannot suspend') ~= nil))\n"
      "  end)\n"
      "local keyfns = {\n"
      "  badkey = function() error('keyfn broke') end,\n"
      "  booleankey = function() return true end,\n"
      "  fractional = function() return 1.5 end,\n"
      "  tablekey = function() return { 1, {} } end,\n"
      "  float = function() return 50.0 end,\n"
      "  int = function() return 50 end,\n"
      "  str60 = function() return '60' end,\n"
      "  int60 = function() return 60 end,\n"
      "}\n"
      "bot.use(sequentialize(function(ctx)\n"
      "  local f = keyfns[ctx.msg.text:match('^(%a+%d*)')]\n"
      "  if f then return f(ctx) end\n"
      "  return ctx.chat.id\n"
      "end))\n"
      "local nested = tghost.Composer()\n"
      "nested.use(sequentialize(function(ctx) return 'user:' .. ctx.from.id end))\n"
      "nested.on('message', function(ctx)\n"
      "  tghost.sleep(tonumber(ctx.msg.text:match('d(%d+)')) / 1000)\n"
      "  ctx:reply(ctx.msg.text)\n"
      "end)\n"
      "bot.filter(function(ctx) return ctx.msg.text:find('^nested') end, nested)\n"
      "bot.on('message', function(ctx)\n"
      "  local t = ctx.msg.text\n"
      "  if t == 'fail' then\n"
      "    tghost.sleep(0.2); ctx:reply('raising'); error('boom')\n"
      "  end\n"
      "  if t == 'hang' then ctx:reply('started hang'); tghost.sleep(1000) end\n"
      "  if t == 'float' or t == 'str60' then tghost.sleep(0.4) end\n"
      "  ctx:reply('ok ' .. t)\n"
      "end)\n"
      "handle = run(bot, { sink = { timeout = { milliseconds = 1500 } } })\n");
  fakeapi_push_text(api, 10, 1, "fail");
  fakeapi_push_text(api, 10, 1, "after-fail");
  fakeapi_push_text(api, 20, 1, "badkey");
  fakeapi_push_text(api, 20, 1, "after-badkey");
  fakeapi_push_text(api, 30, 1, "booleankey");
  fakeapi_push_text(api, 31, 1, "fractional");
  fakeapi_push_text(api, 32, 1, "tablekey");
  fakeapi_push_text(api, 40, 1, "hang");
  fakeapi_push_text(api, 45, 1, "hang");   /* two hang; the second waits */
  fakeapi_push_text(api, 45, 1, "hang");
  fakeapi_push_text(api, 90, 1, "holdkey");
  fakeapi_push_text(api, 70, 1, "raw1");
  fakeapi_push_text(api, 71, 1, "raw2");
  fakeapi_push_text(api, 50, 1, "float");
  fakeapi_push_text(api, 51, 1, "int");
  fakeapi_push_text(api, 60, 1, "str60");
  fakeapi_push_text(api, 61, 1, "int60");
  fakeapi_push_text(api, 80, 5, "nested-a d300");
  fakeapi_push_text(api, 81, 5, "nested-b d0");
  struct proc *p = proc_start(script, NULL);
  wait_text("holding", 10000);
  fakeapi_push_text(api, 91, 1, "dropkey");
  wait_text("started hang", 10000);
  uint64_t hang_started = harness_now_ms();
  run_for(300);
  fakeapi_push_text(api, 40, 1, "after-hang");
  fakeapi_push_text(api, 45, 1, "after-hang2");
  wait_text("ok after-hang", 10000);
  wait_text("ok after-hang2", 10000);
  uint64_t after_hang = harness_now_ms();
  wait_text("ok after-fail", 10000);
  wait_text("ok after-badkey", 10000);
  wait_text("ok int", 10000);
  wait_text("ok int60", 10000);
  wait_text("nested-b d0", 10000);
  wait_text("released", 10000);
  wait_text("dropped true", 10000);
  run_for(200);
  fakeapi_push_text(api, 1, 1, "stats");
  wait_text("keys 0 links 0 size 1", 10000);

  size_t n;
  struct reply *r = collect_replies(&n);
  /* Errors reach bot.catch, each for its own update only. */
  const struct reply *c;
  CHECK((c = find_prefix(r, n, "caught fail: ")) && strstr(c->text, "boom"),
        "the handler error did not reach bot.catch");
  CHECK((c = find_prefix(r, n, "caught badkey: ")) &&
            strstr(c->text, "keyfn broke"),
        "the key function's error did not reach bot.catch");
  CHECK((c = find_prefix(r, n, "caught booleankey: ")) &&
            strstr(c->text, "sequentialize: the key function returned a "
                            "boolean"),
        "no clear error for a boolean key: %s", c ? c->text : "(none)");
  CHECK((c = find_prefix(r, n, "caught fractional: ")) &&
            strstr(c->text, "not an integer"),
        "no clear error for a fractional key: %s", c ? c->text : "(none)");
  CHECK((c = find_prefix(r, n, "caught tablekey: ")) &&
            strstr(c->text, "key list item 2 is a table"),
        "no clear error for a table in the key list: %s",
        c ? c->text : "(none)");
  CHECK(!find_prefix(r, n, "ok fail") && !find_prefix(r, n, "ok badkey") &&
            !find_prefix(r, n, "ok booleankey"),
        "a failed update went on");
  /* Successors ran after their failed predecessors. */
  const struct reply *a = find_reply(r, n, "raising");
  const struct reply *b = find_reply(r, n, "ok after-fail");
  CHECK(a && b && b->received_us >= a->answered_us,
        "after-fail ran before the failing update was done");
  /* The timed-out update was cancelled and released its successor, which
   * had waited for it. */
  CHECK(!find_reply(r, n, "ok hang"), "the hanging update finished");
  CHECK(after_hang - hang_started >= 1200,
        "after-hang did not wait for the hanging update (%llu ms)",
        (unsigned long long)(after_hang - hang_started));
  /* Keys acquired without a to-be-closed variable are released when the
   * job ends. */
  a = find_reply(r, n, "end raw1");
  b = find_reply(r, n, "start raw2");
  const struct reply *a2 = find_reply(r, n, "end raw2");
  const struct reply *b2 = find_reply(r, n, "start raw1");
  CHECK(a && b && a2 && b2, "raw replies missing");
  CHECK(b->received_us >= a->answered_us || b2->received_us >= a2->answered_us,
        "two jobs held key 777 at once");
  /* The dropped wait gave up its place: it did not wait for key 901. */
  a = find_reply(r, n, "released");
  b = find_reply(r, n, "dropped true");
  CHECK(a && b && b->answered_us <= a->received_us,
        "the dropped acquire waited for the holder of key 901");
  /* 50.0 and 50 are one key; "60" and 60 are two. */
  a = find_reply(r, n, "ok float");
  b = find_reply(r, n, "ok int");
  CHECK(a && b && b->received_us >= a->answered_us,
        "key 50 did not wait for key 50.0");
  a = find_reply(r, n, "ok str60");
  b = find_reply(r, n, "ok int60");
  CHECK(a && b && b->answered_us <= a->received_us,
        "integer key 60 waited for string key \"60\"");
  /* Nested: b shares only the inner key (the user) with a. */
  a = find_reply(r, n, "nested-a d300");
  b = find_reply(r, n, "nested-b d0");
  CHECK(a && b && b->received_us >= a->answered_us,
        "the nested sequentialize did not order by its key");
  free_replies(r, n);
  proc_stop_cleanly(p);
  CHECK(strstr(proc_stderr(p), "timed out"), "the timeout was not logged");
}

/* --- one chat floods the bot -------------------------------------------- */

/* Concurrency 10; one chat sends 300 slow updates, then 100 other chats
 * send one each. Waiting updates of the busy chat give their slots up, so
 * the other chats are all answered while most of the flood still waits. */
TEST(flood_others_flow) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("flood.lua",
      "bot.use(sequentialize(function(ctx) return ctx.chat.id end))\n"
      "bot.on('message', function(ctx)\n"
      "  tghost.sleep(0.01)\n"
      "  ctx:reply(ctx.msg.text)\n"
      "end)\n"
      "run(bot, { sink = { concurrency = 10, maxWaiting = 1000 } })\n");
  enum { FLOOD = 300, OTHERS = 100 };
  char text[32];
  for (int i = 0; i < FLOOD; i++) {
    snprintf(text, sizeof text, "flood %d", i);
    fakeapi_push_text(api, 1, 1, text);
  }
  for (int i = 0; i < OTHERS; i++) {
    snprintf(text, sizeof text, "other %d", i);
    fakeapi_push_text(api, 100 + i, 100 + i, text);
  }
  struct proc *p = proc_start(script, NULL);
  wait_replies(FLOOD + OTHERS, 60000);
  size_t n;
  struct reply *r = collect_replies(&n);
  long flood_before_last_other = 0, others = 0;
  for (size_t i = 0; i < n && others < OTHERS; i++) {
    if (strncmp(r[i].text, "other ", 6) == 0) others++;
    else flood_before_last_other++;
  }
  CHECK(others == OTHERS, "%ld other replies", others);
  /* Serial flood updates take >= 10 ms each; the others need a few
   * round trips. Without parking they would wait behind ~290 of them. */
  CHECK(flood_before_last_other < FLOOD / 3,
        "%ld flood updates were answered before the last other chat",
        flood_before_last_other);
  fprintf(stderr, "flood: all %d other chats answered after %ld of %d "
          "flood updates\n", OTHERS, flood_before_last_other, FLOOD);
  free_replies(r, n);
  proc_stop_cleanly(p);
}

/* Concurrency 5 and maxWaiting 20: however hard one chat floods, no more
 * than 25 updates are ever in flight (fetched and not done), and parking
 * does take it past the concurrency. */
TEST(flood_bound) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("bound.lua",
      "local handle\n"
      "bot.use(sequentialize(function(ctx) return ctx.chat.id end))\n"
      "bot.on('message', function(ctx)\n"
      "  local size = handle:size()\n"
      "  tghost.sleep(0.003)\n"
      "  ctx:reply('size ' .. math.max(size, handle:size()))\n"
      "end)\n"
      "handle = run(bot, { sink = { concurrency = 5, maxWaiting = 20 } })\n");
  enum { FLOOD = 200, OTHERS = 30 };
  for (int i = 0; i < FLOOD; i++) fakeapi_push_text(api, 1, 1, "flood");
  for (int i = 0; i < OTHERS; i++) fakeapi_push_text(api, 100 + i, 1, "x");
  struct proc *p = proc_start(script, NULL);
  wait_replies(FLOOD + OTHERS, 60000);
  size_t n;
  struct reply *r = collect_replies(&n);
  long max_size = 0;
  for (size_t i = 0; i < n; i++) {
    long size;
    CHECK(sscanf(r[i].text, "size %ld", &size) == 1, "reply '%s'", r[i].text);
    if (size > max_size) max_size = size;
  }
  CHECK(max_size <= 25, "%ld updates in flight with concurrency 5 and "
        "maxWaiting 20", max_size);
  CHECK(max_size > 5, "at most %ld updates in flight: nothing parked",
        max_size);
  for (size_t i = 0; i < fakeapi_poll_count(api); i++)
    CHECK(fakeapi_poll(api, i)->limit <= 25, "getUpdates asked for %d",
          fakeapi_poll(api, i)->limit);
  fprintf(stderr, "bound: at most %ld updates in flight (limit 25)\n",
          max_size);
  free_replies(r, n);
  proc_stop_cleanly(p);
}
