/* Conversations end to end (ctx:wait): tghost against the fake Bot API.
 *
 * Bots tag their replies with who they are for ("done <user> ..."), so the
 * test can tell which conversation an answer reached. */
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "calls.h"
#include "harness.h"
#include "probe.h"

/* --- helpers ------------------------------------------------------------ */

/* How many calls (so far) had text == want. */
static size_t text_count(const char *want) {
  struct fakeapi *api = harness_api();
  size_t n = 0;
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    char *t = fake_call_string(fakeapi_call(api, i), "text");
    if (t && strcmp(t, want) == 0) n++;
    free(t);
  }
  return n;
}

/* The first call with text == want, or NULL. */
static const struct fake_call *text_call(const char *want) {
  struct fakeapi *api = harness_api();
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    char *t = fake_call_string(c, "text");
    bool hit = t && strcmp(t, want) == 0;
    free(t);
    if (hit) return c;
  }
  return NULL;
}

static bool have_text(void *ud) { return api_sent_text(ud); }

static void expect_text(int timeout_ms, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void expect_text(int timeout_ms, const char *fmt, ...) {
  char want[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(want, sizeof want, fmt, ap);
  va_end(ap);
  CHECK(run_until(have_text, want, timeout_ms), "no reply '%s' arrived", want);
}

struct text_wait {
  const char *text;
  size_t want;
};

static bool have_text_count(void *ud) {
  struct text_wait *w = ud;
  return text_count(w->text) >= w->want;
}

static void wait_text_count(const char *text, size_t want, int timeout_ms) {
  struct text_wait w = {text, want};
  CHECK(run_until(have_text_count, &w, timeout_ms), "'%s' came %zu times, "
        "not %zu", text, text_count(text), want);
}

/* Counts replies by text prefix, looking at each call once (the big tests
 * have tens of thousands). */
#define TALLY_MAX 6
struct tally {
  const char *prefix[TALLY_MAX];
  size_t count[TALLY_MAX];
  size_t scanned;
};

static void tally_update(struct tally *t) {
  struct fakeapi *api = harness_api();
  size_t n = fakeapi_call_count(api);
  for (; t->scanned < n; t->scanned++) {
    const struct fake_call *c = fakeapi_call(api, t->scanned);
    if (strcmp(c->method, "sendMessage") != 0) continue;
    /* {"chat_id":N,"text":"..."}: the text starts after "text":" */
    const char *p = strstr(c->params, "\"text\":\"");
    if (!p) continue;
    p += 8;
    for (int i = 0; i < TALLY_MAX && t->prefix[i]; i++)
      if (strncmp(p, t->prefix[i], strlen(t->prefix[i])) == 0) t->count[i]++;
  }
}

struct tally_wait {
  struct tally *t;
  int index;
  size_t want;
};

static bool tally_reached(void *ud) {
  struct tally_wait *w = ud;
  tally_update(w->t);
  return w->t->count[w->index] >= w->want;
}

static void wait_tally(struct tally *t, int index, size_t want,
                       int timeout_ms) {
  struct tally_wait w = {t, index, want};
  CHECK(run_until(tally_reached, &w, timeout_ms),
        "only %zu of %zu replies starting '%s' arrived", t->count[index], want,
        t->prefix[index]);
}


/* True if some call so far had a text that contains needle. */
static bool sent_text_containing(void *needle) {
  struct fakeapi *api = harness_api();
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    char *t = fake_call_string(fakeapi_call(api, i), "text");
    bool hit = t && strstr(t, needle);
    free(t);
    if (hit) return true;
  }
  return false;
}

static bool stdout_has(void *ud) {
  void **a = ud;
  return strstr(proc_stdout(a[0]), a[1]) != NULL;
}


/* A file replaced the way many editors save: a new file renamed over it. */
static void write_by_rename(const char *name, const char *content) {
  char tmpname[128];
  snprintf(tmpname, sizeof tmpname, ".%s.tmp", name);
  const char *tmp = harness_write(tmpname, content);
  char path[256];
  snprintf(path, sizeof path, "%s/%s", harness_tmpdir(), name);
  CHECK(rename(tmp, path) == 0, "rename %s", tmp);
}

static void push_photo(struct fakeapi *api, int64_t chat, int64_t user) {
  char body[512];
  snprintf(body, sizeof body,
           "\"message\":{\"message_id\":7,\"from\":{\"id\":%lld,\"is_bot\":"
           "false,\"first_name\":\"User\"},\"chat\":{\"id\":%lld,\"type\":"
           "\"%s\"},\"date\":1717000000,\"photo\":[{\"file_id\":\"p\","
           "\"file_unique_id\":\"u\",\"width\":1,\"height\":1}]}",
           (long long)user, (long long)chat,
           chat < 0 ? "supergroup" : "private");
  fakeapi_push_update(api, body);
}

static void push_callback(struct fakeapi *api, int64_t chat, int64_t user,
                          const char *data) {
  char body[768];
  snprintf(body, sizeof body,
           "\"callback_query\":{\"id\":\"cq-%s\",\"from\":{\"id\":%lld,"
           "\"is_bot\":false,\"first_name\":\"User\"},\"message\":{"
           "\"message_id\":5,\"from\":{\"id\":4242,\"is_bot\":true,"
           "\"first_name\":\"Test Bot\"},\"chat\":{\"id\":%lld,\"type\":"
           "\"private\"},\"date\":1717000000,\"text\":\"pick\"},"
           "\"chat_instance\":\"77\",\"data\":\"%s\"}",
           data, (long long)user, (long long)chat, data);
  fakeapi_push_update(api, body);
}

/* xorshift, so a failure can be replayed. */
static uint64_t rng = 88172645463325252ULL;
static uint64_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* For the bots below without sequentialize: ask(ctx, text) sends the
 * question from a child task, which runs once the handler is suspended in
 * its ctx:wait, so an answer the test sends as soon as it sees the
 * question cannot reach the bot before the wait is in place. (A person
 * cannot answer that fast; a test can. With sequentialize, the usual
 * set-up, the answer is routed to the dialog either way: see the other
 * tests.) */
#define ASK_PRELUDE \
  "local function ask(ctx, text)\n" \
  "  tghost.spawn(function() ctx:reply(text) end)\n" \
  "end\n"

/* --- the register dialog in many chats ---------------------------------- */

static const char register_bot[] =
    "bot.use(sequentialize(function(ctx) return ctx.chat and ctx.chat.id end))\n"
    "bot.command('register', function(ctx)\n"
    "  local who = ctx.from.id\n"
    "  ctx:reply('name? ' .. who)\n"
    "  local name = ctx:wait('message:text').msg.text\n"
    "  ctx:reply('age? ' .. who)\n"
    "  local age\n"
    "  repeat\n"
    "    local c = ctx:wait('message:text', { timeout = 60 })\n"
    "    age = math.tointeger(tonumber(c.msg.text))\n"
    "    if not age then c:reply('number? ' .. who) end\n"
    "  until age\n"
    "  ctx:reply(('done %d %s %d'):format(who, name, age))\n"
    "end)\n"
    "bot.on('message:text', function(ctx)\n"
    "  ctx:reply('other ' .. ctx.from.id .. ' ' .. ctx.msg.text)\n"
    "end)\n"
    "run(bot)\n";

struct person {
  int64_t chat, user;
};

static void shuffle(struct person *p, size_t n) {
  for (size_t i = n - 1; i > 0; i--) {
    size_t j = (size_t)(rnd() % (i + 1));
    struct person t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
}

/* 200 private chats and one group of 20 members run the dialog at once;
 * the group's messages interleave (and 5 other members chat in it), some
 * users send a wrong age and the right one back to back. Every answer
 * reaches its own user's conversation, and nothing else does. */
TEST(register_many_chats) {
  struct fakeapi *api = harness_api();
  enum { PRIVATE = 200, MEMBERS = 20, N = PRIVATE + MEMBERS, CHATTY = 5 };
  const int64_t GROUP = -500;
  struct person people[N];
  for (int i = 0; i < PRIVATE; i++) people[i] = (struct person){10000 + i, 10000 + i};
  for (int i = 0; i < MEMBERS; i++)
    people[PRIVATE + i] = (struct person){GROUP, 20000 + i};
  const char *script = harness_write("register.lua", register_bot);
  struct proc *p = proc_start(script, NULL);
  struct tally t = {{"name? ", "age? ", "number? ", "done ", "other "}, {0}, 0};
  char text[64];

  shuffle(people, N);
  for (int i = 0; i < N; i++)
    fakeapi_push_text(api, people[i].chat, people[i].user, "/register");
  wait_tally(&t, 0, N, 30000);

  shuffle(people, N);
  for (int i = 0; i < N; i++) {
    snprintf(text, sizeof text, "n%lld", (long long)people[i].user);
    fakeapi_push_text(api, people[i].chat, people[i].user, text);
    if (i % 40 == 0 && i / 40 < CHATTY)
      fakeapi_push_text(api, GROUP, 29000 + i / 40, "hi");
  }
  wait_tally(&t, 1, N, 30000);
  wait_tally(&t, 4, CHATTY, 10000);

  shuffle(people, N);
  size_t wrong = 0;
  for (int i = 0; i < N; i++) {
    if (people[i].user % 3 == 0) {
      fakeapi_push_text(api, people[i].chat, people[i].user, "abc");
      wrong++;
    }
    snprintf(text, sizeof text, "%lld", (long long)(people[i].user % 100 + 1));
    fakeapi_push_text(api, people[i].chat, people[i].user, text);
  }
  wait_tally(&t, 3, N, 30000);
  run_for(200);
  tally_update(&t);
  CHECK(t.count[2] == wrong, "%zu 'number?' replies for %zu wrong ages",
        t.count[2], wrong);
  CHECK(t.count[4] == CHATTY, "%zu 'other' replies: answers went past their "
        "conversations", t.count[4]);
  for (int i = 0; i < N; i++) {
    snprintf(text, sizeof text, "done %lld n%lld %lld",
             (long long)people[i].user, (long long)people[i].user,
             (long long)(people[i].user % 100 + 1));
    const struct fake_call *c = text_call(text);
    CHECK(c, "no '%s'", text);
    CHECK(c->chat_id == people[i].chat, "'%s' went to chat %lld", text,
          (long long)c->chat_id);
    CHECK(text_count(text) == 1, "'%s' came %zu times", text,
          text_count(text));
  }
  for (int i = 0; i < CHATTY; i++) {
    snprintf(text, sizeof text, "other %d hi", 29000 + i);
    CHECK(text_count(text) == 1, "no '%s'", text);
  }
  fprintf(stderr, "%d dialogs (%d in one group, %zu wrong ages), %d bystanders: "
          "every answer reached its conversation\n", N, MEMBERS, wrong,
          CHATTY);
  proc_stop_cleanly(p);
}

/* Users who type faster than the bot asks: each one's /register, name,
 * (wrong age,) and age all come in the one getUpdates batch, in 20
 * private chats and a group of 5, interleaved. With sequentialize by chat
 * every answer still reaches its dialog: an update that waited for its
 * chat is offered to the conversations again, and one whose conversation
 * is busy is held for it with its keys set aside (the conversation needs
 * them back to go on). */
TEST(answers_in_one_batch) {
  struct fakeapi *api = harness_api();
  enum { PRIVATE = 20, MEMBERS = 5, N = PRIVATE + MEMBERS, STEPS = 4 };
  const int64_t GROUP = -600;
  struct person people[N];
  int step[N];
  for (int i = 0; i < PRIVATE; i++) people[i] = (struct person){30000 + i, 30000 + i};
  for (int i = 0; i < MEMBERS; i++)
    people[PRIVATE + i] = (struct person){GROUP, 40000 + i};
  memset(step, 0, sizeof step);
  char text[64];
  /* Random interleaving, each user's own messages in order. */
  for (int left = N * STEPS; left > 0;) {
    int i = (int)(rnd() % N);
    if (step[i] == STEPS) continue;
    int64_t u = people[i].user;
    switch (step[i]++) {
      case 0: snprintf(text, sizeof text, "/register"); break;
      case 1: snprintf(text, sizeof text, "n%lld", (long long)u); break;
      case 2: snprintf(text, sizeof text, u % 2 ? "abc" : "-"); break;
      default: snprintf(text, sizeof text, "%lld", (long long)(u % 100 + 1));
    }
    fakeapi_push_text(api, people[i].chat, u, text);
    left--;
  }
  const char *script = harness_write("register.lua", register_bot);
  struct proc *p = proc_start(script, NULL);
  struct tally t = {{"done ", "other "}, {0}, 0};
  wait_tally(&t, 0, N, 30000);
  for (int i = 0; i < N; i++) {
    snprintf(text, sizeof text, "done %lld n%lld %lld",
             (long long)people[i].user, (long long)people[i].user,
             (long long)(people[i].user % 100 + 1));
    CHECK(text_count(text) == 1, "no '%s'", text);
  }
  tally_update(&t);
  CHECK(t.count[1] == 0, "%zu answers ran the middleware", t.count[1]);
  CHECK(fakeapi_poll(api, 0)->returned == N * STEPS,
        "the first batch had %d updates, not %d",
        fakeapi_poll(api, 0)->returned, N * STEPS);
  proc_stop_cleanly(p);
}

/* --- waits by any key ---------------------------------------------------- */

/* Under the default key function (this user in this chat), a dialog can
 * still wait for anyone in its chat (a group quiz), for its user in any
 * chat, or on a key of its own: the waits of each kind meet the updates
 * that have their key, most specific first, and a key no update can have
 * is an error at the call. */
TEST(waits_by_any_key) {
  struct fakeapi *api = harness_api();
  const int64_t GROUP = -700;
  const char *script = harness_write("keys.lua",
      "bot.use(sequentialize(function(ctx) return ctx.chat and ctx.chat.id end))\n"
      "bot.command('quiz', function(ctx)\n"
      "  ctx:reply('quiz 2+2?')\n"
      "  local a = ctx:wait(function(c) return c.msg.text == '4' end,\n"
      "                     { chat = true })\n"
      "  ctx:reply('quiz won by ' .. a.from.id)\n"
      "end)\n"
      "bot.command('name', function(ctx)\n"
      "  ctx:reply('name? ' .. ctx.from.id)\n"
      "  local a = ctx:wait('message:text')\n"
      "  ctx:reply('name ' .. ctx.from.id .. ' ' .. a.msg.text)\n"
      "end)\n"
      "bot.command('dm', function(ctx)\n"
      "  -- (asked once the wait is in place: the answer comes from another\n"
      "  -- chat, which sequentialize does not order with this one)\n"
      "  tghost.spawn(function() ctx:reply('dm me') end)\n"
      "  local a = ctx:wait('message:text', { user = ctx.from.id })\n"
      "  ctx:reply('dm got ' .. a.chat.id .. ' ' .. a.msg.text)\n"
      "end)\n"
      "bot.command('wrongkey', function(ctx)\n"
      "  local ok, err = pcall(ctx.wait, ctx, 'message:text', { key = ctx.chat.id })\n"
      "  ctx:reply('wrongkey ' .. tostring(err))\n"
      "end)\n"
      "bot.on('message:text', function(ctx)\n"
      "  ctx:reply('other ' .. ctx.from.id .. ' ' .. ctx.msg.text)\n"
      "end)\n"
      "run(bot)\n");
  struct proc *p = proc_start(script, NULL);
  fakeapi_push_text(api, GROUP, 1, "/quiz");
  expect_text(10000, "quiz 2+2?");
  fakeapi_push_text(api, GROUP, 3, "/name");
  expect_text(10000, "name? 3");
  /* Bob's wrong answer is not the quiz's: the middleware has it. */
  fakeapi_push_text(api, GROUP, 2, "5");
  expect_text(10000, "other 2 5");
  /* Carol's dialog of her own goes on beside the chat-wide one. */
  fakeapi_push_text(api, GROUP, 3, "Cee");
  expect_text(10000, "name 3 Cee");
  fakeapi_push_text(api, GROUP, 2, "4");
  expect_text(10000, "quiz won by 2");
  /* Started in the group, answered in private. */
  fakeapi_push_text(api, GROUP, 1, "/dm");
  expect_text(10000, "dm me");
  fakeapi_push_text(api, 1, 1, "psst");
  expect_text(10000, "dm got 1 psst");
  fakeapi_push_text(api, GROUP, 1, "/wrongkey");
  CHECK(run_until(sent_text_containing, "keys.lua:21: ctx:wait: key \"-700\" "
                  "can never match: the bot's key function (the default) "
                  "gives every update the key \"chat id:user id\"; to wait "
                  "for anyone in chat -700 pass { chat = -700 }", 10000),
        "a wait on a key no update can have was no error at its line");
  CHECK(!api_sent_text("other 2 4") && !api_sent_text("other 3 Cee") &&
        !api_sent_text("other 1 psst"), "an answer ran the middleware");
  proc_stop_cleanly(p);

  /* A key function that gives integers, a wait that names the key as a
   * string: one key. */
  const char *script2 = harness_write("intkeys.lua",
      "conversation{ key = function(ctx) return ctx.chat and ctx.chat.id end }\n"
      "bot.use(sequentialize(function(ctx) return ctx.chat and ctx.chat.id end))\n"
      "bot.command('ask', function(ctx)\n"
      "  ctx:reply('ask?')\n"
      "  local a = ctx:wait('message:text', { key = tostring(ctx.chat.id) })\n"
      "  ctx:reply('ask got ' .. a.msg.text)\n"
      "end)\n"
      "bot.on('message:text', function(ctx) ctx:reply('other ' .. ctx.msg.text) end)\n"
      "run(bot)\n");
  p = proc_start(script2, NULL);
  fakeapi_push_text(api, 5, 5, "/ask");
  expect_text(10000, "ask?");
  fakeapi_push_text(api, 5, 6, "five");
  expect_text(10000, "ask got five");
  CHECK(!api_sent_text("other five"), "the answer ran the middleware");
  proc_stop_cleanly(p);
}

/* --- sessions and middleware around a wait -------------------------------- */

/* The repro: a dialog that changed its session before its wait
 * loses nothing the updates that ran while it waited wrote, and they lose
 * nothing of its (count ends at 3: /ask, /inc, /inc). The same with the
 * session table kept in a local across the wait. */
TEST(session_across_wait) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("count.lua",
      "bot.use(sequentialize(function(ctx) return ctx.chat and ctx.chat.id end))\n"
      "bot.use(session{ initial = function() return { count = 0 } end })\n"
      "bot.command('ask', function(ctx)\n"
      "  ctx.session.count = ctx.session.count + 1\n"
      "  ctx:reply('name?')\n"
      "  local a = ctx:wait('message:text')\n"
      "  ctx.session.name = a.msg.text\n"
      "  ctx:reply('ok')\n"
      "end)\n"
      "bot.command('ask2', function(ctx)\n"
      "  local s = ctx.session\n"
      "  s.count = s.count + 1\n"
      "  ctx:reply('name?')\n"
      "  s.name = ctx:wait('message:text').msg.text\n"
      "  ctx:reply('ok')\n"
      "end)\n"
      "bot.command('inc', function(ctx)\n"
      "  ctx.session.count = ctx.session.count + 1\n"
      "  ctx:reply('inc')\n"
      "end)\n"
      "bot.command('show', function(ctx)\n"
      "  ctx:reply(('show %d %s'):format(ctx.session.count, tostring(ctx.session.name)))\n"
      "end)\n"
      "run(bot)\n");
  struct proc *p = proc_start(script, NULL);
  const char *ask[] = {"/ask", "/ask2"};
  for (int chat = 1; chat <= 2; chat++) {
    fakeapi_push_text(api, chat, chat, ask[chat - 1]);
    wait_text_count("name?", (size_t)chat, 10000);
    fakeapi_push_text(api, chat, chat, "/inc");
    fakeapi_push_text(api, chat, chat, "/inc");
    wait_text_count("inc", (size_t)chat * 2, 10000);
    fakeapi_push_text(api, chat, chat, "Ada");
    wait_text_count("ok", (size_t)chat, 10000);
    fakeapi_push_text(api, chat, chat, "/show");
    wait_text_count("show 3 Ada", (size_t)chat, 10000);
  }
  proc_stop_cleanly(p);
}

/* A random schedule per chat of /inc, dialogs (/ask N asks N questions)
 * and answers, the chats' messages interleaved at random and pushed in
 * bursts of random size; every handler and every dialog step yields for a
 * random time between reading its session and writing it back. Each
 * message adds one to its chat's count, whoever takes it (an /inc, the
 * dialog it starts, the dialog it answers, or the plain text handler when
 * no dialog wants it), so at the end every chat's count is its number of
 * messages: no write was lost. Once with memory sessions, once with
 * SQLite (whose calls suspend the handler too). */
static const char interleave_fmt[] =
    "local store = %s\n"
    "bot.use(sequentialize(function(ctx) return ctx.chat and ctx.chat.id end))\n"
    "bot.use(session{ storage = store, initial = function() return { count = 0 } end })\n"
    "local function bump(ctx, ms)\n"
    "  local c = ctx.session.count\n"
    "  if ms > 0 then tghost.sleep(ms / 1000) end\n"
    "  ctx.session.count = c + 1\n"
    "end\n"
    "local function ms_of(text) return tonumber(text:match('(%%d+)$')) or 0 end\n"
    "bot.command('inc', function(ctx) bump(ctx, ms_of(ctx.msg.text)) end)\n"
    "bot.command('ask', function(ctx)\n"
    "  local n = tonumber(ctx.match:match('^(%%d+)'))\n"
    "  bump(ctx, ms_of(ctx.msg.text))\n"
    "  for _ = 1, n do\n"
    "    local a = ctx:wait('message:text')\n"
    "    bump(ctx, ms_of(a.msg.text))\n"
    "  end\n"
    "end)\n"
    "bot.command('show', function(ctx)\n"
    "  ctx:reply(('show %%d %%d'):format(ctx.chat.id, ctx.session.count))\n"
    "end)\n"
    "bot.on('message:text', function(ctx) bump(ctx, ms_of(ctx.msg.text)) end)\n"
    "run(bot)\n";

static void interleavings_with(const char *store, uint64_t seed) {
  struct fakeapi *api = harness_api();
  /* Only this run's replies count (a test may run this twice). */
  size_t from = fakeapi_call_count(api);
  enum { CHATS = 24, MESSAGES = 14 };
  char text[2048];
  snprintf(text, sizeof text, interleave_fmt, store);
  const char *script = harness_write("interleave.lua", text);
  struct proc *p = proc_start(script, NULL);
  rng = seed;
  int sent[CHATS];
  memset(sent, 0, sizeof sent);
  int left = CHATS * MESSAGES;
  while (left > 0) {
    int burst = 1 + (int)(rnd() % 40);
    for (; burst > 0 && left > 0; burst--) {
      int c = (int)(rnd() % CHATS);
      if (sent[c] == MESSAGES) continue;
      int64_t chat = 5000 + c;
      int ms = (int)(rnd() % 4) == 0 ? 0 : (int)(rnd() % 8);
      switch (rnd() % 4) {
        case 0: snprintf(text, sizeof text, "/inc %d", ms); break;
        case 1: snprintf(text, sizeof text, "/ask %d %d", 1 + (int)(rnd() % 3),
                         ms); break;
        default: snprintf(text, sizeof text, "a %d", ms);
      }
      fakeapi_push_text(api, chat, chat, text);
      sent[c]++;
      left--;
    }
    run_for((int)(rnd() % 15));
  }
  for (int c = 0; c < CHATS; c++) fakeapi_push_text(api, 5000 + c, 5000 + c, "/show");
  struct tally t = {{"show "}, {0}, from};
  wait_tally(&t, 0, CHATS, 60000);
  for (int c = 0; c < CHATS; c++) {
    snprintf(text, sizeof text, "show %d ", 5000 + c);
    char *got = reply_starting_from(from, text);
    snprintf(text, sizeof text, "show %d %d", 5000 + c, MESSAGES);
    CHECK(got && strcmp(got, text) == 0, "chat %d: '%s', not the %d messages "
          "it got: a write was lost", 5000 + c, got ? got : "(no reply)",
          MESSAGES);
    free(got);
  }
  fprintf(stderr, "%s: %d chats x %d messages, every count right\n", store,
          CHATS, MESSAGES);
  proc_stop_cleanly(p);
}

TEST(session_interleavings) {
  interleavings_with("tghost.storage.memory('s')", 0x9E3779B97F4A7C15ULL);
  char sqlite[600];
  snprintf(sqlite, sizeof sqlite, "tghost.storage.sqlite('%s/s.db')",
           harness_tmpdir());
  interleavings_with(sqlite, 0xD1B54A32D192ED03ULL);
}

/* The update a conversation receives runs the middleware its own update
 * went through to reach the handler, outermost first: the bot's use()
 * middleware and a composer's (fields set, the session: the answer's
 * ctx.session is the conversation's), and middleware behind a filter if
 * the answer passes that filter too; not the handlers on the way, nor
 * middleware registered after the handler, nor sequentialize. The
 * stack stays open while the conversation handles the answer (its
 * middleware returns at the next wait, or when the handler ends, and the
 * session is written then). A middleware that does not call next() stops
 * the answer: the wait goes on. */
TEST(answers_run_middleware) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("mw.lua",
      "bot.use(sequentialize(function(ctx) return ctx.chat and ctx.chat.id end))\n"
      "bot.use(function(ctx, next)\n"
      "  ctx.seen = 'A'\n"
      "  print('A in ' .. ctx.update.update_id)\n"
      "  next()\n"
      "  print('A out ' .. ctx.update.update_id)\n"
      "end)\n"
      "bot.use(function(ctx, next)\n"
      "  if ctx.msg and ctx.msg.text == 'blocked' then return end\n"
      "  return next()\n"
      "end)\n"
      "bot.use(session{ initial = function() return { answers = 0 } end })\n"
      "local admin = tghost.Composer()\n"
      "admin.use(function(ctx, next) ctx.lang = 'en'; return next() end)\n"
      "admin.on('::bot_command', function(ctx, next)\n"
      "  print('command mw ' .. ctx.msg.text)\n"
      "  return next()\n"
      "end)\n"
      "admin.on('message:text', function(ctx, next) ctx.texty = true; return next() end)\n"
      "admin.command('ask', function(ctx)\n"
      "  ctx:reply('q1')\n"
      "  local a = ctx:wait('message:text')\n"
      "  a.session.answers = a.session.answers + 1\n"
      "  ctx:reply(('got %s seen=%s lang=%s texty=%s same=%s'):format(a.msg.text,\n"
      "    tostring(a.seen), tostring(a.lang), tostring(a.texty),\n"
      "    tostring(a.session == ctx.session)))\n"
      "  local b = ctx:wait('message:text')\n"
      "  b.session.answers = b.session.answers + 1\n"
      "  ctx:reply('got2 ' .. b.msg.text)\n"
      "end)\n"
      "bot.use(admin)\n"
      "bot.use(function(ctx, next)\n"
      "  print('after ' .. ctx.update.update_id)\n"
      "  return next()\n"
      "end)\n"
      "bot.command('show', function(ctx) ctx:reply('answers ' .. ctx.session.answers) end)\n"
      "run(bot)\n");
  struct proc *p = proc_start(script, NULL);
  int64_t u0 = fakeapi_push_text(api, 1, 1, "/ask");
  expect_text(10000, "q1");
  fakeapi_push_text(api, 1, 1, "blocked");
  int64_t u1 = fakeapi_push_text(api, 1, 1, "Ada");
  expect_text(10000, "got Ada seen=A lang=en texty=true same=true");
  char line[64];
  snprintf(line, sizeof line, "A in %lld\n", (long long)u1);
  CHECK(strstr(proc_stdout(p), line), "the bot's middleware did not run for "
        "the answer:\n%s", proc_stdout(p));
  snprintf(line, sizeof line, "A out %lld\n", (long long)u1);
  CHECK(!strstr(proc_stdout(p), line), "the answer's middleware returned "
        "before the conversation was done with it");
  int64_t u2 = fakeapi_push_text(api, 1, 1, "Bob");
  expect_text(10000, "got2 Bob");
  fakeapi_push_text(api, 1, 1, "/show");
  expect_text(10000, "answers 2");
  void *out1[2] = {p, line};
  CHECK(run_until(stdout_has, out1, 10000), "the first answer's middleware "
        "never returned");
  char out2[64];
  snprintf(out2, sizeof out2, "A out %lld\n", (long long)u2);
  void *o2[2] = {p, out2};
  CHECK(run_until(stdout_has, o2, 10000), "the last answer's middleware "
        "never returned");
  const char *out = proc_stdout(p);
  /* The answer's middleware returned once the conversation waited again,
   * which is after it handled the answer. */
  char u0_out[64];
  snprintf(u0_out, sizeof u0_out, "A out %lld\n", (long long)u0);
  CHECK(strstr(out, u0_out), "the dialog's own update never left its "
        "middleware");
  CHECK(!strstr(out, "command mw Ada") && !strstr(out, "command mw Bob"),
        "middleware behind a filter the answer does not pass ran for it:\n%s",
        out);
  CHECK(strstr(out, "command mw /ask"), "the middleware behind a filter did "
        "not run for the dialog's own update");
  for (int64_t u = u1; u <= u2; u++) {
    snprintf(line, sizeof line, "after %lld\n", (long long)u);
    CHECK(!strstr(out, line), "middleware after the handler ran for an "
          "answer");
  }
  CHECK(!api_sent_text("got blocked"), "a middleware that stopped an answer "
        "did not stop it");
  proc_stop_cleanly(p);
}

/* --- timeouts ----------------------------------------------------------- */

/* opts.timeout raises a catchable ConversationTimeout; uncaught it goes to
 * bot.catch; and a conversation that waits longer than the sink's
 * per-update timeout is not cut short for it (waiting is not running). */
TEST(timeout) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("timeout.lua", ASK_PRELUDE
      "bot.command('t', function(ctx)\n"
      "  ask(ctx, 't?')\n"
      "  local ok, err = pcall(ctx.wait, ctx, 'message:text', { timeout = 0.3 })\n"
      "  ctx:reply('t ' .. tostring(err) .. ' '\n"
      "            .. tostring(getmetatable(err) == tghost.ConversationTimeout))\n"
      "end)\n"
      "bot.command('s', function(ctx)\n"
      "  ask(ctx, 's?')\n"
      "  local c = ctx:wait('message:text', { timeout = 30 })\n"
      "  ctx:reply('s got ' .. c.msg.text)\n"
      "end)\n"
      "bot.command('u', function(ctx)\n"
      "  ask(ctx, 'u?')\n"
      "  ctx:wait('message:text', { timeout = 0.2 })\n"
      "end)\n"
      "bot.catch(function(err) err.ctx:reply('caught ' .. tostring(err.error)) end)\n"
      "run(bot, { sink = { timeout = { milliseconds = 300 } } })\n");
  struct proc *p = proc_start(script, NULL);
  fakeapi_push_text(api, 1, 1, "/t");
  fakeapi_push_text(api, 2, 2, "/s");
  fakeapi_push_text(api, 3, 3, "/u");
  expect_text(10000, "t ConversationTimeout: no answer within 0.3 s "
                     "(conversation 1:1) true");
  const struct fake_call *asked = text_call("t?"), *told = text_call(
      "t ConversationTimeout: no answer within 0.3 s (conversation 1:1) true");
  /* The question goes out just after the wait began. */
  uint64_t waited_ms = (told->received_us - asked->received_us) / 1000;
  CHECK(waited_ms >= 250 && waited_ms < 5000, "the 0.3 s timeout came after "
        "%llu ms", (unsigned long long)waited_ms);
  expect_text(10000, "caught ConversationTimeout: no answer within 0.2 s "
                     "(conversation 3:3)");
  /* /s has waited for over three times the per-update timeout. */
  expect_text(10000, "s?");
  run_for(1000);
  fakeapi_push_text(api, 2, 2, "late");
  expect_text(10000, "s got late");
  CHECK(!strstr(proc_stderr(p), "timed out"), "a waiting conversation was "
        "timed out by the sink");
  proc_stop_cleanly(p);
}

/* --- cancelling, replacing, commands ------------------------------------ */

TEST(cancel_and_replace) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("cancel.lua",
      "bot.use(sequentialize(function(ctx) return ctx.chat and ctx.chat.id end))\n"
      "bot.command('start', function(ctx)\n"
      "  local n = ctx.match\n"
      "  ctx:reply('q ' .. n)\n"
      "  local ok, err = pcall(ctx.wait, ctx, 'message:text')\n"
      "  if ok then ctx:reply('a ' .. n .. ' ' .. err.msg.text)\n"
      "  elseif getmetatable(err) == tghost.ConversationCancelled then\n"
      "    print(tostring(err))\n"
      "    ctx:reply('cancelled ' .. n .. ' ' .. err.reason)\n"
      "  else error(err, 0) end\n"
      "end)\n"
      "bot.command('quiet', function(ctx)\n"
      "  local mark <close> = setmetatable({}, { __close = function()\n"
      "    print('quiet closed') end })\n"
      "  ctx:reply('quiet?')\n"
      "  ctx:wait('message:text')\n"
      "  ctx:reply('never')\n"
      "end)\n"
      "bot.command('cmd', function(ctx)\n"
      "  ctx:reply('cmd?')\n"
      "  local c = ctx:wait('message:text', { commands = true })\n"
      "  ctx:reply('cmd got ' .. c.msg.text)\n"
      "end)\n"
      "bot.command('cancel', function(ctx)\n"
      "  ctx:reply('cancel ' .. tostring(ctx:cancelConversation()))\n"
      "end)\n"
      "bot.command('kill', function(ctx)\n"
      "  ctx:reply('kill ' .. tostring(ctx:cancelConversation(ctx.match)))\n"
      "end)\n"
      "bot.command('help', function(ctx) ctx:reply('help ' .. ctx.chat.id) end)\n"
      "bot.catch(function(err) err.ctx:reply('caught ' .. tostring(err.error)) end)\n"
      "run(bot)\n");
  struct proc *p = proc_start(script, NULL);
  /* /cancel is a command: it runs through the middleware and ends the
   * conversation, whose wait raises ConversationCancelled. */
  fakeapi_push_text(api, 1, 1, "/start one");
  expect_text(10000, "q one");
  fakeapi_push_text(api, 1, 1, "/cancel");
  expect_text(10000, "cancelled one cancelled");
  expect_text(10000, "cancel true");
  CHECK(strstr(proc_stdout(p), "ConversationCancelled: conversation 1:1 "
               "cancelled by ctx:cancelConversation()"),
        "the error says: %s", proc_stdout(p));
  fakeapi_push_text(api, 1, 1, "/cancel");
  expect_text(10000, "cancel false");
  /* A second conversation on a key replaces the first. */
  fakeapi_push_text(api, 2, 2, "/start a");
  expect_text(10000, "q a");
  fakeapi_push_text(api, 2, 2, "/start b");
  expect_text(10000, "cancelled a replaced");
  expect_text(10000, "q b");
  fakeapi_push_text(api, 2, 2, "hello");
  expect_text(10000, "a b hello");
  /* Uncaught, a cancel just ends the handler: its <close> variables run,
   * bot.catch hears nothing. */
  fakeapi_push_text(api, 3, 3, "/quiet");
  expect_text(10000, "quiet?");
  fakeapi_push_text(api, 3, 3, "/cancel");
  expect_text(10000, "cancel true");
  void *quiet[2] = {p, "quiet closed"};
  CHECK(run_until(stdout_has, quiet, 10000), "the cancelled handler's "
        "<close> variable did not run");
  /* Commands answer a wait only when it asks for them. */
  fakeapi_push_text(api, 4, 4, "/cmd");
  expect_text(10000, "cmd?");
  fakeapi_push_text(api, 4, 4, "/help");
  expect_text(10000, "cmd got /help");
  fakeapi_push_text(api, 5, 5, "/start x");
  expect_text(10000, "q x");
  fakeapi_push_text(api, 5, 5, "/help");
  expect_text(10000, "help 5");
  /* Another user's conversation, by its key. */
  fakeapi_push_text(api, 6, 6, "/kill 5:5");
  expect_text(10000, "cancelled x cancelled");
  expect_text(10000, "kill true");
  run_for(200);
  CHECK(!api_sent_text("never"), "a cancelled wait returned");
  CHECK(!strstr(proc_stderr(p), "ERROR"), "a cancel was reported as an "
        "error:\n%s", proc_stderr(p));
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    char *t = fake_call_string(fakeapi_call(api, i), "text");
    CHECK(!t || strncmp(t, "caught", 6) != 0, "bot.catch got '%s'", t);
    free(t);
  }
  proc_stop_cleanly(p);
}

/* Asks the bot (/waiting in a chat of its own) until n conversations wait:
 * a dialog's question is sent before its ctx:wait begins. */
static void wait_waiting(struct fakeapi *api, int n) {
  char want[32];
  snprintf(want, sizeof want, "waiting %d", n);
  size_t before = text_count(want);
  for (int i = 0; i < 200 && text_count(want) == before; i++) {
    fakeapi_push_text(api, 99, 99, "/waiting");
    run_for(20);
  }
  CHECK(text_count(want) > before, "no '%s'", want);
}

/* A command that starts a dialog on the key of a waiting one replaces it,
 * and the answers that came after that command are the new dialog's, even
 * when they arrive before its ctx:wait (here: in one batch with it, no
 * sequentialize). A command that asks nothing (/help) only delays them:
 * the waiting dialog still gets the answer typed after it. */
TEST(replace_gets_later_answers) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("replace.lua",
      "local conv = require('tghost.conv')\n"
      "local dialogs = 0\n"
      "bot.command('register', function(ctx)\n"
      "  dialogs = dialogs + 1\n"
      "  local n = dialogs\n"
      "  ctx:reply('name? ' .. n)\n"
      "  local ok, a = pcall(ctx.wait, ctx, 'message:text')\n"
      "  if ok then ctx:reply('hi ' .. n .. ' ' .. a.msg.text)\n"
      "  else ctx:reply('ended ' .. n .. ' ' .. tostring(a.reason)) end\n"
      "end)\n"
      "bot.command('waiting', function(ctx)\n"
      "  local _, waiting = conv.stats()\n"
      "  ctx:reply('waiting ' .. waiting)\n"
      "end)\n"
      "bot.command('help', function(ctx) ctx:reply('help') end)\n"
      "bot.on('message:text', function(ctx) ctx:reply('echo ' .. ctx.msg.text) end)\n"
      "run(bot)\n");
  struct proc *p = proc_start(script, NULL);
  fakeapi_push_text(api, 1, 1, "/register");
  wait_waiting(api, 1);
  fakeapi_push_text(api, 1, 1, "/register");
  fakeapi_push_text(api, 1, 1, "Ada");
  fakeapi_push_text(api, 1, 1, "hello");
  expect_text(10000, "hi 2 Ada");
  expect_text(10000, "echo hello");
  expect_text(10000, "ended 1 replaced");
  CHECK(!api_sent_text("hi 1 Ada"), "the replaced dialog took the answer");
  fakeapi_push_text(api, 2, 2, "/register");
  wait_waiting(api, 1);
  fakeapi_push_text(api, 2, 2, "/help");
  fakeapi_push_text(api, 2, 2, "Bob");
  expect_text(10000, "hi 3 Bob");
  expect_text(10000, "help");
  CHECK(!api_sent_text("echo Bob"), "the answer ran the middleware");
  proc_stop_cleanly(p);
}

/* --- updates that do not match ------------------------------------------ */

TEST(not_matching) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("match.lua", ASK_PRELUDE
      "bot.command('ask', function(ctx)\n"
      "  ask(ctx, 'ask?')\n"
      "  ctx:reply('ask got ' .. ctx:wait('message:text').msg.text)\n"
      "end)\n"
      "bot.command('ask2', function(ctx)\n"
      "  ask(ctx, 'ask2?')\n"
      "  local c = ctx:wait(function(c) return c.msg.text == 'yes' end, {\n"
      "    otherwise = function(o)\n"
      "      o:reply('otherwise ' .. (o.msg.text or 'photo'))\n"
      "    end })\n"
      "  ctx:reply('ask2 got ' .. c.msg.text)\n"
      "end)\n"
      "bot.command('askcb', function(ctx)\n"
      "  ask(ctx, 'askcb?')\n"
      "  local c = ctx:wait({ 'callback_query:data', 'message:photo' })\n"
      "  c:answerCallbackQuery('ok')\n"
      "  ctx:reply('askcb got ' .. c.callbackQuery.data)\n"
      "end)\n"
      "bot.command('askerr', function(ctx)\n"
      "  ask(ctx, 'askerr?')\n"
      "  local ok, err = pcall(ctx.wait, ctx, function(c) error('boom', 0) end)\n"
      "  ctx:reply('askerr ' .. tostring(err))\n"
      "end)\n"
      "bot.on('message:photo', function(ctx) ctx:reply('photo handler') end)\n"
      "bot.on('message:text', function(ctx)\n"
      "  ctx:reply('text handler ' .. ctx.msg.text)\n"
      "end)\n"
      "run(bot)\n");
  struct proc *p = proc_start(script, NULL);
  /* A photo does not match "message:text": the middleware has it, the
   * wait goes on. */
  fakeapi_push_text(api, 1, 1, "/ask");
  expect_text(10000, "ask?");
  push_photo(api, 1, 1);
  expect_text(10000, "photo handler");
  fakeapi_push_text(api, 1, 1, "fine");
  expect_text(10000, "ask got fine");
  CHECK(!api_sent_text("text handler fine"), "the answer ran the middleware");
  /* With otherwise, the dialog answers what does not match itself. */
  fakeapi_push_text(api, 2, 2, "/ask2");
  expect_text(10000, "ask2?");
  fakeapi_push_text(api, 2, 2, "no");
  expect_text(10000, "otherwise no");
  push_photo(api, 2, 2);
  expect_text(10000, "otherwise photo");
  fakeapi_push_text(api, 2, 2, "yes");
  expect_text(10000, "ask2 got yes");
  CHECK(text_count("photo handler") == 1 && !api_sent_text("text handler no"),
        "otherwise did not take the updates that did not match");
  /* A list of queries; a button press from the same user in the chat. */
  fakeapi_push_text(api, 3, 3, "/askcb");
  expect_text(10000, "askcb?");
  fakeapi_push_text(api, 3, 3, "words");
  expect_text(10000, "text handler words");
  push_callback(api, 3, 3, "b1");
  expect_text(10000, "askcb got b1");
  /* A filter that raises: the error is the waiting handler's, the update
   * runs through the middleware. */
  fakeapi_push_text(api, 4, 4, "/askerr");
  expect_text(10000, "askerr?");
  fakeapi_push_text(api, 4, 4, "x");
  expect_text(10000, "askerr boom");
  expect_text(10000, "text handler x");
  proc_stop_cleanly(p);
}

/* User code that routing runs outside any handler is under the CPU guard
 * like a handler: a key function that loops fails (the update runs through
 * the middleware), and so does a wait's filter that loops (its error is
 * the waiting handler's); other updates and conversations go on. */
TEST(routing_code_loops) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("loops.lua", ASK_PRELUDE
      "conversation{ key = function(ctx)\n"
      "  if ctx.msg and ctx.msg.text == 'spin' then while true do end end\n"
      "  return ctx.chat and ctx.chat.id\n"
      "end }\n"
      "bot.command('ask', function(ctx)\n"
      "  ask(ctx, 'ask?')\n"
      "  ctx:reply('ask got ' .. ctx:wait('message:text').msg.text)\n"
      "end)\n"
      "bot.command('askloop', function(ctx)\n"
      "  ask(ctx, 'askloop?')\n"
      "  local ok, err = pcall(ctx.wait, ctx, function(c)\n"
      "    while true do end\n"
      "  end)\n"
      "  ctx:reply('askloop ' .. (ok and 'matched' or 'failed'))\n"
      "end)\n"
      "bot.on('message:text', function(ctx)\n"
      "  ctx:reply('text handler ' .. ctx.msg.text)\n"
      "end)\n"
      "run(bot)\n");
  const char *args[] = {"--cpu-budget", "0.2", NULL};
  struct proc *p = proc_start(script, args);
  fakeapi_push_text(api, 1, 1, "/ask");
  expect_text(10000, "ask?");
  uint64_t t0 = harness_now_ms();
  fakeapi_push_text(api, 2, 2, "spin");
  wait_stderr(p, "the conversation key function failed", 10000);
  uint64_t stalled = harness_now_ms() - t0;
  CHECK(strstr(proc_stderr(p), "CPU budget of 200 ms"), "not the guard's "
        "error");
  fakeapi_push_text(api, 1, 1, "fine");
  expect_text(10000, "ask got fine");
  /* The filter runs in the conversation's own generation, outside its
   * handler. */
  fakeapi_push_text(api, 3, 3, "/askloop");
  expect_text(10000, "askloop?");
  fakeapi_push_text(api, 3, 3, "x");
  expect_text(10000, "askloop failed");
  expect_text(10000, "text handler x");
  fprintf(stderr, "a looping key function held the loop %llu ms (budget "
          "200 ms)\n", (unsigned long long)stalled);
  CHECK(stalled < 3000, "stopped after %llu ms", (unsigned long long)stalled);
  proc_stop_cleanly(p);
}

/* --- sequentialize ------------------------------------------------------ */

static long slow_steps(void *ud, const struct fake_call *call) {
  if (strcmp(call->method, "sendMessage") != 0) return 0;
  char *t = fake_call_string(call, "text");
  long ms = t && strncmp(t, "step ", 5) == 0 ? 400 : 0;
  free(t);
  return ms;
}

/* With sequentialize by chat (the usual set-up), in a group: while A's
 * conversation waits, B's messages run (A does not hold the chat);
 * A's answers reach A, also those A sends while A's handler is busy
 * between two questions (held for it, in order); and A's /cancel, a
 * command, runs through the middleware and ends A's conversation (which
 * then gets the chat back behind it). Nothing deadlocks. */
TEST(sequentialize_no_deadlock) {
  struct fakeapi *api = harness_api();
  enum { A = 1, B = 2 };
  const int64_t G = -700;
  fakeapi_set_delay_fn(api, slow_steps, NULL);
  const char *script = harness_write("seq.lua",
      "bot.use(sequentialize(function(ctx) return ctx.chat and ctx.chat.id end))\n"
      "bot.command('reg', function(ctx)\n"
      "  local u = ctx.from.id\n"
      "  ctx:reply('name? ' .. u)\n"
      "  local ok, err = pcall(function()\n"
      "    local a = ctx:wait('message:text').msg.text\n"
      "    ctx:reply('step ' .. u .. ' ' .. a)\n"
      "    local b = ctx:wait('message:text').msg.text\n"
      "    local c = ctx:wait('message:text').msg.text\n"
      "    ctx:reply(('done %d %s %s %s'):format(u, a, b, c))\n"
      "  end)\n"
      "  if not ok then ctx:reply('ended ' .. u .. ' ' .. tostring(err.reason or err)) end\n"
      "end)\n"
      "bot.command('cancel', function(ctx)\n"
      "  ctx:cancelConversation()\n"
      "  ctx:reply('cancel ' .. ctx.from.id)\n"
      "end)\n"
      "bot.on('message:text', function(ctx)\n"
      "  ctx:reply('chat ' .. ctx.from.id .. ' ' .. ctx.msg.text)\n"
      "end)\n"
      "run(bot)\n");
  struct proc *p = proc_start(script, NULL);
  fakeapi_push_text(api, G, A, "/reg");
  expect_text(10000, "name? 1");
  /* A waits: B's message is not stuck behind A's hold on the chat. */
  fakeapi_push_text(api, G, B, "hi");
  expect_text(5000, "chat 2 hi");
  /* A answers; while A's handler is busy with its slow step, A sends two
   * more answers and B a message. */
  fakeapi_push_text(api, G, A, "x");
  wait_calls("sendMessage", 3, 10000);
  CHECK(text_call("step 1 x") && !text_call("step 1 x")->answered_us,
        "the step was not in progress");
  fakeapi_push_text(api, G, A, "y");
  fakeapi_push_text(api, G, B, "hey");
  fakeapi_push_text(api, G, A, "z");
  expect_text(10000, "done 1 x y z");
  expect_text(10000, "chat 2 hey");
  CHECK(!api_sent_text("chat 1 y") && !api_sent_text("chat 1 z"),
        "an answer sent during the step went past the conversation");
  /* /cancel while A waits: no deadlock between the two. */
  fakeapi_push_text(api, G, A, "/reg");
  wait_text_count("name? 1", 2, 10000);
  fakeapi_push_text(api, G, A, "/cancel");
  expect_text(10000, "cancel 1");
  expect_text(10000, "ended 1 cancelled");
  const struct fake_call *cancel = text_call("cancel 1"),
                         *ended = text_call("ended 1 cancelled");
  CHECK(cancel->seq < ended->seq, "the cancelled conversation ran before "
        "the /cancel that holds its chat had finished");
  proc_stop_cleanly(p);
}

/* --- the sequential sink ------------------------------------------------ */

/* bot.start() runs one update at a time: a conversation waiting for its
 * user must not be that one update. */
TEST(sequential_sink) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("start.lua", ASK_PRELUDE
      "bot.command('reg', function(ctx)\n"
      "  ask(ctx, 'reg?')\n"
      "  ctx:reply('reg got ' .. ctx:wait('message:text').msg.text)\n"
      "end)\n"
      "bot.on('message:text', function(ctx) ctx:reply('pong ' .. ctx.msg.text) end)\n"
      "bot.start()\n");
  struct proc *p = proc_start(script, NULL);
  fakeapi_push_text(api, 1, 1, "/reg");
  expect_text(10000, "reg?");
  for (int i = 0; i < 5; i++) {
    char text[16];
    snprintf(text, sizeof text, "p%d", i);
    fakeapi_push_text(api, 2, 2, text);
  }
  expect_text(10000, "pong p4");
  fakeapi_push_text(api, 1, 1, "ok");
  expect_text(10000, "reg got ok");
  proc_stop_cleanly(p);
}

/* --- hot reload --------------------------------------------------------- */

static const char reload_fmt[] = ASK_PRELUDE
    "local V = '%s'\n"
    "bot.command('reg', function(ctx)\n"
    "  ask(ctx, V .. ' name?')\n"
    "  ctx:reply(V .. ' hi ' .. ctx:wait('message:text').msg.text)\n"
    "end)\n"
    "bot.on('message:text', function(ctx) ctx:reply(V .. ' other ' .. ctx.msg.text) end)\n"
    "run(bot)\n";

/* A dialog that started on the old code finishes on it; new dialogs and
 * other updates use the new code; the old generation retires once its
 * dialog is over. */
TEST(reload_mid_dialog) {
  struct fakeapi *api = harness_api();
  char text[1024];
  snprintf(text, sizeof text, reload_fmt, "v1");
  const char *script = harness_write("bot.lua", text);
  struct proc *p = proc_start(script, NULL);
  fakeapi_push_text(api, 1, 1, "/reg");
  expect_text(10000, "v1 name?");
  snprintf(text, sizeof text, reload_fmt, "v2");
  write_by_rename("bot.lua", text);
  wait_stderr(p, "generation 2 loaded", 10000);
  CHECK(strstr(proc_stderr(p), "generation 1 retires when its 1 job(s)"),
        "the log does not say generation 1 still has the dialog");
  fakeapi_push_text(api, 2, 2, "/reg");
  expect_text(10000, "v2 name?");
  fakeapi_push_text(api, 3, 3, "x");
  expect_text(10000, "v2 other x");
  CHECK(!strstr(proc_stderr(p), "generation 1 retired"),
        "generation 1 retired with a dialog in progress");
  fakeapi_push_text(api, 1, 1, "Ada");
  expect_text(10000, "v1 hi Ada");
  fakeapi_push_text(api, 2, 2, "Bob");
  expect_text(10000, "v2 hi Bob");
  wait_stderr(p, "generation 1 retired", 10000);
  CHECK(!api_sent_text("v2 other Ada") && !api_sent_text("v1 other Ada"),
        "the old dialog's answer ran the middleware");
  proc_stop_cleanly(p);
}

/* No dialog pins a generation forever: every wait has a timeout (24 h
 * unless the script says otherwise), a reload names the waiting dialogs
 * that keep an old generation alive, and /metrics counts the generations
 * alive. */
static const char pinned_fmt[] =
    "%s\n"
    "bot.command('reg', function(ctx)\n"
    "  ctx:reply('%s name?')\n"
    "  ctx:wait('message:text')\n"
    "  ctx:reply('%s hi')\n"
    "end)\n"
    "bot.catch(function(err) print('caught ' .. tostring(err.error)) end)\n"
    "run(bot)\n";

TEST(no_pinned_generations) {
  struct fakeapi *api = harness_api();
  char text[1024];
  snprintf(text, sizeof text, pinned_fmt, "", "v1", "v1");
  const char *script = harness_write("bot.lua", text);
  const char *args[] = {"--metrics", "127.0.0.1:0", NULL};
  struct proc *p = proc_start(script, args);
  int mport = wait_port(p, METRICS_MARK);
  struct metric_wait alive = {mport, "tghost_generations_alive", 1};
  CHECK(run_until(metric_is, &alive, 10000), "not 1 generation alive");
  /* A dialog on the default timeout pins generation 1. */
  fakeapi_push_text(api, 1, 1, "/reg");
  expect_text(10000, "v1 name?");
  snprintf(text, sizeof text, pinned_fmt, "conversation{ timeout = 1 }", "v2",
           "v2");
  write_by_rename("bot.lua", text);
  wait_stderr(p, "generation 1 stays alive for 1 waiting conversation(s): "
              "1:1 (at ", 10000);
  CHECK(strstr(proc_stderr(p), "bot.lua:4, waiting 0 s, times out in 23 h "
               "59 min)"), "the log line does not name the dialog, its line "
        "and its 24 h timeout");
  alive.want = 2;
  CHECK(run_until(metric_is, &alive, 10000), "not 2 generations alive");
  /* On generation 2 waits time out after 1 s: its dialog pins generation 2
   * for that long only. */
  fakeapi_push_text(api, 2, 2, "/reg");
  expect_text(10000, "v2 name?");
  uint64_t t0 = harness_now_ms();
  snprintf(text, sizeof text, pinned_fmt, "", "v3", "v3");
  write_by_rename("bot.lua", text);
  wait_stderr(p, "generation 2 stays alive for 1 waiting conversation(s): "
              "2:2 (at ", 10000);
  alive.want = 3;
  CHECK(run_until(metric_is, &alive, 10000), "not 3 generations alive");
  wait_stderr(p, "generation 2 retired", 10000);
  uint64_t took = harness_now_ms() - t0;
  CHECK(strstr(proc_stdout(p), "caught ConversationTimeout: no answer within "
               "1 s (conversation 2:2)"), "the timeout did not reach bot.catch");
  CHECK(took < 5000, "generation 2 retired %llu ms after the reload",
        (unsigned long long)took);
  alive.want = 2;
  CHECK(run_until(metric_is, &alive, 10000), "not 2 generations alive");
  /* Generation 1's dialog still waits, and ends when answered. */
  CHECK(!strstr(proc_stderr(p), "generation 1 retired"), "generation 1 "
        "retired with its dialog waiting");
  fakeapi_push_text(api, 1, 1, "Ada");
  expect_text(10000, "v1 hi");
  wait_stderr(p, "generation 1 retired", 10000);
  alive.want = 1;
  CHECK(run_until(metric_is, &alive, 10000), "not 1 generation alive");
  proc_stop_cleanly(p);
}

/* --- a graceful stop ---------------------------------------------------- */

/* SIGTERM: the update in progress finishes first, then the 50 waiting
 * conversations are cut short (their <close> variables run), counted in
 * one line, long before the drain timeout; exit 0. */
TEST(stop_cancels_waiting) {
  struct fakeapi *api = harness_api();
  enum { WAITING = 50 };
  const char *script = harness_write("stop.lua",
      "bot.command('reg', function(ctx)\n"
      "  local mark <close> = setmetatable({}, { __close = function()\n"
      "    print('closed ' .. ctx.chat.id) end })\n"
      "  ctx:reply('name?')\n"
      "  ctx:wait('message:text')\n"
      "  ctx:reply('never')\n"
      "end)\n"
      "bot.command('slow', function(ctx)\n"
      "  print('slow started')\n"
      "  tghost.sleep(0.5)\n"
      "  print('slow done')\n"
      "  ctx:reply('slow done')\n"
      "end)\n"
      "run(bot)\n");
  static const char *const args[] = {"--drain-timeout", "20", NULL};
  struct proc *p = proc_start(script, args);
  for (int i = 0; i < WAITING; i++) fakeapi_push_text(api, 100 + i, 100 + i, "/reg");
  wait_calls("sendMessage", WAITING, 10000);
  fakeapi_push_text(api, 1, 1, "/slow");
  void *started[2] = {p, "slow started"};
  CHECK(run_until(stdout_has, started, 10000), "/slow did not start");
  uint64_t t0 = harness_now_ms();
  proc_kill(p, SIGTERM);
  CHECK(proc_wait(p, 20000), "tghost did not exit after SIGTERM");
  uint64_t took = harness_now_ms() - t0;
  CHECK(proc_status(p) == 0, "exit status %d", proc_status(p));
  proc_check_clean(p);
  CHECK(took < 5000, "the stop took %llu ms (drain timeout 20 s)",
        (unsigned long long)took);
  CHECK(api_sent_text("slow done"), "the update in progress was cut short");
  const char *out = proc_stdout(p);
  const char *done = strstr(out, "slow done"), *closed = strstr(out, "closed ");
  CHECK(done && closed && done < closed, "the conversations were cut short "
        "before the update in progress finished:\n%s", out);
  CHECK(count_in(out, "closed ") == WAITING, "%zu <close> variables ran for "
        "%d waiting conversations", count_in(out, "closed "), WAITING);
  CHECK(strstr(proc_stderr(p), "stopping: 50 conversation(s) still waiting "
               "for their user are cut short"), "the count was not logged");
  CHECK(count_in(proc_stderr(p), "update cut short") == 0,
        "each conversation got a line of its own");
  CHECK(!api_sent_text("never"), "a cut-short wait returned");
}

/* --- a restart with the journal ----------------------------------------- */

/* With --journal, a conversation cut short by a stop is an update cut
 * short like any other: its first update runs again at the next start
 * (ctx.redelivered), so the dialog starts over; the answers it had
 * consumed are done and do not come back. */
TEST(journal_restart) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("journal.lua", ASK_PRELUDE
      "bot.command('reg', function(ctx)\n"
      "  ask(ctx, (ctx.redelivered and 'again ' or '') .. 'name?')\n"
      "  local n = ctx:wait('message:text').msg.text\n"
      "  ask(ctx, 'age? ' .. n)\n"
      "  local a = ctx:wait('message:text').msg.text\n"
      "  ctx:reply('done ' .. n .. ' ' .. a)\n"
      "end)\n"
      "bot.on('message:text', function(ctx) ctx:reply('other ' .. ctx.msg.text) end)\n"
      "run(bot)\n");
  char path[512];
  snprintf(path, sizeof path, "%s/bot.journal", harness_tmpdir());
  const char *const args[] = {"--journal", path, NULL};
  struct proc *p = proc_start(script, args);
  fakeapi_push_text(api, 1, 1, "/reg");
  expect_text(10000, "name?");
  fakeapi_push_text(api, 1, 1, "Ada");
  expect_text(10000, "age? Ada");
  proc_stop_cleanly(p);
  CHECK(strstr(proc_stderr(p), "1 conversation(s) still waiting"),
        "the stop did not cut the conversation short");

  p = proc_start(script, args);
  expect_text(10000, "again name?");
  fakeapi_push_text(api, 1, 1, "Bob");
  expect_text(10000, "age? Bob");
  fakeapi_push_text(api, 1, 1, "36");
  expect_text(10000, "done Bob 36");
  CHECK(!api_sent_text("other Ada") && text_count("age? Ada") == 1,
        "the consumed answer ran again");
  proc_stop_cleanly(p);
}

/* --- 10,000 waiting ----------------------------------------------------- */

/* CPU time (user + system) the process has used, in ms. */
static double proc_cpu_ms(const struct proc *p) {
  char path[64], line[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", proc_pid(p));
  FILE *f = fopen(path, "r");
  CHECK(f, "cannot read %s", path);
  size_t n = fread(line, 1, sizeof line - 1, f);
  fclose(f);
  line[n] = '\0';
  /* Fields 14 and 15, counted after the ")" that ends the command. */
  const char *q = strrchr(line, ')');
  unsigned long utime = 0, stime = 0;
  CHECK(q && sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                    "%lu %lu", &utime, &stime) == 2, "bad %s", path);
  return (double)(utime + stime) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

struct rate {
  size_t updates;
  double seconds;
  double cpu_ms;                /* tghost's CPU time meanwhile */
};

/* Pushes n pings from chats no conversation has; returns how long their
 * n pongs took, and tghost's CPU time for them. */
static struct rate ping_rate(struct proc *p, struct tally *t,
                             int64_t first_chat, size_t n,
                             size_t pongs_before) {
  struct fakeapi *api = harness_api();
  uint64_t t0 = harness_now_ms();
  double cpu0 = proc_cpu_ms(p);
  for (size_t i = 0; i < n; i++)
    fakeapi_push_text(api, first_chat + (int64_t)i, first_chat + (int64_t)i,
                      "ping");
  wait_tally(t, 2, pongs_before + n, 60000);
  struct rate r = {n, (harness_now_ms() - t0) / 1000.0,
                   proc_cpu_ms(p) - cpu0};
  return r;
}

struct stats {
  long heap, keys, waiting, held;
};

static struct stats bot_stats(struct tally *t) {
  size_t before = t->count[3];
  fakeapi_push_text(harness_api(), 1, 1, "/stats");
  wait_tally(t, 3, before + 1, 20000);
  struct fakeapi *api = harness_api();
  struct stats s = {-1, -1, -1, -1};
  for (size_t i = fakeapi_call_count(api); i-- > 0;) {
    char *text = fake_call_string(fakeapi_call(api, i), "text");
    bool hit = text && sscanf(text, "stats %ld %ld %ld %ld", &s.heap, &s.keys,
                              &s.waiting, &s.held) == 4;
    free(text);
    if (hit) break;
  }
  return s;
}

/* Asks for the stats until ok(s) (the last reply of a handler reaches the
 * server a moment before the handler has ended or started its wait). */
static struct stats stats_when(struct tally *t, bool (*ok)(const struct stats *),
                               int timeout_ms) {
  uint64_t deadline = harness_now_ms() + (uint64_t)timeout_ms;
  struct stats s;
  while (s = bot_stats(t), !ok(&s) && harness_now_ms() < deadline)
    run_for(50);
  return s;
}

static bool all_waiting(const struct stats *s) { return s->waiting == 10000; }
static bool none_left(const struct stats *s) {
  return s->keys == 0 && s->waiting == 0 && s->held == 0;
}

/* 10,000 users in the middle of a dialog (10,000 chats, sequentialize by
 * chat, the default concurrency of 500): other updates flow as fast as
 * before; then every dialog is answered. Memory per waiting conversation
 * is measured (RSS and Lua heap) and bounded: a suspended coroutine, not
 * a copy of the bot. */
TEST_SERIAL(ten_thousand_waiting) {
  struct fakeapi *api = harness_api();
  enum { N = 10000, PINGS = 3000 };
  const char *script = harness_write("many.lua",
      "local conv = require('tghost.conv')\n"
      "bot.use(sequentialize(function(ctx) return ctx.chat and ctx.chat.id end))\n"
      "bot.command('register', function(ctx)\n"
      "  ctx:reply('name?')\n"
      "  ctx:reply('hi ' .. ctx:wait('message:text').msg.text)\n"
      "end)\n"
      "bot.command('stats', function(ctx)\n"
      "  collectgarbage('collect')\n"
      "  collectgarbage('collect')\n"
      "  local keys, waiting, held = conv.stats()\n"
      "  ctx:reply(('stats %d %d %d %d'):format(\n"
      "    math.floor(collectgarbage('count') * 1024), keys, waiting, held))\n"
      "end)\n"
      "bot.on('message:text', function(ctx) ctx:reply('pong') end)\n"
      "run(bot)\n");
  /* The stats handler's full collections of 10,000 conversations are the
   * measurement, not the subject: under a sanitizer they can pass the
   * default 250 ms CPU budget. */
  const char *args[] = {"--cpu-budget", "5", NULL};
  struct proc *p = proc_start(script, args);
  struct tally t = {{"name?", "hi ", "pong", "stats "}, {0}, 0};
  /* Warm up (connection pool, allocator), then the baseline. */
  ping_rate(p, &t, 1000000, PINGS, 0);
  struct rate before = ping_rate(p, &t, 2000000, PINGS, PINGS);
  struct stats s0 = bot_stats(&t);
  long rss0 = proc_rss_kib(p);

  uint64_t t0 = harness_now_ms();
  for (int i = 0; i < N; i++) fakeapi_push_text(api, 100000 + i, 100000 + i, "/register");
  wait_tally(&t, 0, N, 120000);
  double start_s = (harness_now_ms() - t0) / 1000.0;
  struct stats s1 = stats_when(&t, all_waiting, 10000);
  long rss1 = proc_rss_kib(p);
  CHECK(s1.keys == N && s1.waiting == N && s1.held == 0,
        "%ld keys, %ld waiting, %ld held for %d dialogs", s1.keys, s1.waiting,
        s1.held, N);

  struct rate during = ping_rate(p, &t, 3000000, PINGS, 2 * PINGS);
  double rate_before = before.updates / before.seconds;
  double rate_during = during.updates / during.seconds;
  double cpu_before = before.cpu_ms * 1000 / before.updates;
  double cpu_during = during.cpu_ms * 1000 / during.updates;

  t0 = harness_now_ms();
  char text[32];
  for (int i = 0; i < N; i++) {
    snprintf(text, sizeof text, "n%d", i);
    fakeapi_push_text(api, 100000 + i, 100000 + i, text);
  }
  wait_tally(&t, 1, N, 120000);
  double answer_s = (harness_now_ms() - t0) / 1000.0;
  struct stats s2 = stats_when(&t, none_left, 10000);
  tally_update(&t);
  CHECK(s2.keys == 0 && s2.waiting == 0 && s2.held == 0,
        "%ld keys, %ld waiting, %ld held after every dialog ended", s2.keys,
        s2.waiting, s2.held);
  CHECK(t.count[2] == 3 * PINGS, "%zu pongs for %d pings: an update went to "
        "a conversation", t.count[2], 3 * PINGS);
  CHECK(text_count("hi n9999") == 1 && text_count("hi n0") == 1,
        "the answers did not reach their conversations");

  double heap_per = (double)(s1.heap - s0.heap) / N;
  double rss_per = (double)(rss1 - rss0) * 1024.0 / N;
  fprintf(stderr,
          "10,000 waiting conversations: %.0f B of Lua heap and %.0f B of RSS "
          "each (heap %ld -> %ld -> %ld B, RSS %ld -> %ld KiB); started in "
          "%.2f s, answered in %.2f s; other updates %.0f/s and %.0f us of "
          "CPU each before, %.0f/s and %.0f us with them waiting\n",
          heap_per, rss_per, s0.heap, s1.heap, s2.heap, rss0, rss1, start_s,
          answer_s, rate_before, cpu_before, rate_during, cpu_during);
  /* CPU time, not the wall clock: the machine is shared. */
  CHECK(cpu_during <= 2 * cpu_before, "other updates cost %.0f us of CPU "
        "each with 10,000 conversations waiting, %.0f us before", cpu_during,
        cpu_before);
  CHECK(heap_per < 8192, "%.0f B of Lua heap per waiting conversation",
        heap_per);
#ifndef TGHOST_SANITIZE
  /* (AddressSanitizer's redzones and quarantine triple it.) */
  CHECK(rss_per < 16384, "%.0f B of RSS per waiting conversation", rss_per);
#endif
  CHECK(s2.heap < s0.heap + (s1.heap - s0.heap) / 10,
        "the Lua heap did not come back after the dialogs (%ld -> %ld -> "
        "%ld B)", s0.heap, s1.heap, s2.heap);
  proc_stop_cleanly(p);
}

/* The restart story of docs/guide/conversations.md without a storage for
 * conversations: a dialog that keeps its progress in a session stored in
 * SQLite (it still works) goes on at the open question after tghost was
 * killed (no journal: the user's next message resumes it). */
TEST(session_restart) {
  struct fakeapi *api = harness_api();
  char script[4096];
  snprintf(script, sizeof script,
      "local store = tghost.storage.sqlite('%s/bot.db')\n"
      "local function user_key(ctx)\n"
      "  return ctx.chat and ctx.from and ctx.chat.id .. ':' .. ctx.from.id\n"
      "end\n"
      "bot.use(sequentialize(function(ctx) return ctx.chat and ctx.chat.id end))\n"
      "bot.use(session{ getSessionKey = user_key, storage = store,\n"
      "                 initial = function() return {} end })\n"
      "local function register(ctx, answer)\n"
      "  local s = ctx.session\n"
      "  local function ask(question)\n"
      "    if answer then\n"
      "      local a = answer\n"
      "      answer = nil\n"
      "      return a\n"
      "    end\n"
      "    ctx:reply(question)\n"
      "    return ctx:wait('message:text')\n"
      "  end\n"
      "  if not s.reg.name then\n"
      "    s.reg.name = ask('Your name?').msg.text\n"
      "    store:set(user_key(ctx), s)\n"
      "  end\n"
      "  while not s.reg.age do\n"
      "    s.reg.age = math.tointeger(tonumber(ask('Your age?').msg.text))\n"
      "    store:set(user_key(ctx), s)\n"
      "  end\n"
      "  ctx:reply(('Hi %%s, %%d'):format(s.reg.name, s.reg.age))\n"
      "  s.reg = nil\n"
      "end\n"
      "bot.command('register', function(ctx)\n"
      "  if not (ctx.redelivered and ctx.session.reg) then ctx.session.reg = {} end\n"
      "  register(ctx)\n"
      "end)\n"
      "bot.on('message:text', function(ctx, next)\n"
      "  if ctx.session.reg then return register(ctx, ctx) end\n"
      "  return next()\n"
      "end)\n"
      "bot.on('message:text', function(ctx) ctx:reply('echo ' .. ctx.msg.text) end)\n"
      "run(bot)\n", harness_tmpdir());
  const char *path = harness_write("persist.lua", script);
  struct proc *p = proc_start(path, NULL);
  fakeapi_push_text(api, 1, 1, "/register");
  expect_text(10000, "Your name?");
  fakeapi_push_text(api, 1, 1, "Ada");
  expect_text(10000, "Your age?");
  proc_kill(p, SIGKILL);
  CHECK(proc_wait(p, 10000), "no exit after SIGKILL");

  p = proc_start(path, NULL);
  fakeapi_push_text(api, 1, 1, "36");
  expect_text(10000, "Hi Ada, 36");
  CHECK(text_count("Your name?") == 1, "the dialog started over");
  fakeapi_push_text(api, 1, 1, "hello");
  expect_text(10000, "echo hello");
  proc_stop_cleanly(p);
}
