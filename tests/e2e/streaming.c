/* Streaming I/O end to end: tghost.http.stream and tghost.http.sse against
 * the fake model server (tests/support/fakemodel.c), bodies uploaded from
 * a function or a file, backpressure (a 100 MB body through a slow
 * reader), timeouts, and transfers closed when their handler stops
 * reading, ends or is cancelled; ctx:replyStream against the fake Bot
 * API. */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/sse.h"
#include "fakemodel.h"
#include "harness.h"

static struct fakemodel *model;

static void free_model(void) {
  fakemodel_free(model);
  model = NULL;
}

static struct fakemodel *the_model(void) {
  if (!model) {
    model = fakemodel_new(harness_base(), 0);
    CHECK(model, "cannot start the fake model server");
    atexit(free_model);
  }
  return model;
}

static bool have_poll(void *ud) {
  return fakeapi_poll_count(harness_api()) >= 1;
}

static void wait_polling(void) {
  CHECK(run_until(have_poll, NULL, 15000), "tghost never polled");
}

/* Writes a script with every "%s" replaced by the model server's URL and
 * "%%" by "%", as printf would. */
static const char *write_script(const char *name, const char *fmt) {
  const char *url = fakemodel_url(the_model());
  struct buf text = BUF_INIT;
  for (const char *p = fmt; *p; p++) {
    if (p[0] == '%' && p[1] == 's') {
      buf_append_str(&text, url);
      p++;
    } else if (p[0] == '%' && p[1] == '%') {
      buf_append_char(&text, '%');
      p++;
    } else {
      buf_append_char(&text, *p);
    }
  }
  const char *path = harness_write(name, text.data);
  buf_free(&text);
  return path;
}

static const struct fake_call *nth_call(const char *method, size_t nth) {
  struct fakeapi *api = harness_api();
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, method) == 0 && nth-- == 0) return c;
  }
  return NULL;
}

/* Runs a script at the top level; it prints ALL OK when its checks pass. */
static void run_checks(const char *name, const char *fmt) {
  const char *script = write_script(name, fmt);
  struct proc *p = proc_start(script, NULL);
  CHECK(proc_wait(p, 60000), "the script did not finish");
  CHECK(proc_status(p) == 0, "exit status %d", proc_status(p));
  CHECK(strstr(proc_stdout(p), "ALL OK"), "the script did not finish its "
        "checks");
  proc_check_clean(p);
}

/* --- streaming bodies ---------------------------------------------------- */

/* tghost.http.stream's contract: chunks as they come, status and headers
 * first, statuses and failures as values, misuse raised. */
TEST(stream_contract) {
  run_checks("stream.lua",
      "local URL = '%s'\n"
      "local http = tghost.http\n"
      "local res = assert(http.stream{ url = URL .. '/stream?bytes=100000&chunk=1000' })\n"
      "assert(res.status == 200, res.status)\n"
      "assert(res.headers['content-type'] == 'application/octet-stream')\n"
      "local n, pieces, ok = 0, 0, true\n"
      "for chunk in res:chunks() do\n"
      "  for i = 1, #chunk do\n"
      "    if chunk:byte(i) ~= 97 + (n + i - 1) % 26 then ok = false end\n"
      "  end\n"
      "  n, pieces = n + #chunk, pieces + 1\n"
      "end\n"
      "assert(n == 100000 and ok, 'got ' .. n .. ' bytes')\n"
      "assert(res:read() == nil, 'read after the end')\n"
      "-- pieces arrive as they are sent: ten pieces 100 ms apart\n"
      "local t0 = tghost.now()\n"
      "res = assert(http.stream{ url = URL .. '/stream?bytes=10&chunk=1&every_ms=100' })\n"
      "-- the first read has the first piece alone: it came before the rest\n"
      "local first = res:read()\n"
      "assert(first == 'a', 'the first read was ' .. tostring(first))\n"
      "local rest = {}\n"
      "for c in res:chunks() do rest[#rest + 1] = c end\n"
      "assert(table.concat(rest) == 'bcdefghij', table.concat(rest))\n"
      "assert(tghost.now() - t0 > 0.8, 'all at once?')\n"
      "-- any status is an answer\n"
      "res = assert(http.stream{ url = URL .. '/status?code=404' })\n"
      "assert(res.status == 404 and res:read():find('status 404'))\n"
      "-- failures are nil, message\n"
      "local r, err = http.stream{ url = 'http://127.0.0.1:1/' }\n"
      "assert(r == nil and type(err) == 'string', tostring(err))\n"
      "t0 = tghost.now()\n"
      "r, err = http.stream{ url = URL .. '/silent', first_byte_timeout = 0.3 }\n"
      "assert(r == nil and err:find('first byte timeout'), err)\n"
      "assert(tghost.now() - t0 < 2, 'the first byte timeout was not kept')\n"
      "res = assert(http.stream{ url = URL .. '/silent?head=1', idle_timeout = 0.3 })\n"
      "local c, e = res:read()\n"
      "assert(c == nil and e:find('idle timeout'), tostring(e))\n"
      "local raised, msg = pcall(function() for _ in res:chunks() do end end)\n"
      "assert(not raised and msg:find('idle timeout'), msg)\n"
      "-- a closed response reads nothing more\n"
      "res = assert(http.stream{ url = URL .. '/stream?bytes=1000000&chunk=100' })\n"
      "assert(#res:read() > 0)\n"
      "res:close()\n"
      "c, e = res:read()\n"
      "assert(c == nil and e == 'closed', tostring(e))\n"
      "-- misuse raises\n"
      "assert(not pcall(http.stream, { url = URL, bogus = 1 }))\n"
      "assert(not pcall(http.stream, { url = URL, idle_timeout = -1 }))\n"
      "assert(not pcall(http.stream, { url = 'ftp://x/' }))\n"
      "assert(not pcall(http.stream, { url = URL, body = io.stdout }))\n"
      "print('ALL OK')\n");
}

/* Bodies sent as they are produced: a function's pieces (chunked), a file
 * from disk, and the answer read while the upload goes on. */
TEST(stream_upload) {
  enum { SIZE = 3 * 1024 * 1024 };
  struct buf path = BUF_INIT;
  buf_printf(&path, "%s/body.bin", harness_tmpdir());
  FILE *f = fopen(path.data, "wb");
  uint64_t h = 1469598103934665603ULL;
  for (int i = 0; i < SIZE; i++) {
    unsigned char b = (unsigned char)(i * 7 + 3);
    fputc(b, f);
    h = (h ^ b) * 1099511628211ULL;
  }
  fclose(f);
  char want[64];
  snprintf(want, sizeof want, "%016llx", (unsigned long long)h);
  struct buf fmt = BUF_INIT;
  buf_printf(&fmt,
      "local URL = '%%s'\n"
      "local http = tghost.http\n"
      "-- a function: pieces until nil, sent chunked; it may wait\n"
      "local i = 0\n"
      "local function pieces()\n"
      "  i = i + 1\n"
      "  if i > 50 then return nil end\n"
      "  if i %% 10 == 0 then tghost.sleep(0.01) end\n"
      "  return string.rep('x', 1000)\n"
      "end\n"
      "local r = assert(http.request{ method = 'POST', url = URL .. '/upload', body = pieces })\n"
      "local e = tghost.json.decode(r.body)\n"
      "assert(r.status == 200 and e.bytes == 50000, r.body)\n"
      "-- bytes, not a form (curl's default label for a POST body)\n"
      "assert(e.type == 'application/octet-stream', r.body)\n"
      "-- a file, streamed from disk\n"
      "r = assert(http.post(URL .. '/upload', tghost.InputFile('%s')))\n"
      "e = tghost.json.decode(r.body)\n"
      "assert(e.bytes == %d and e.fnv1a64 == '%s', r.body)\n"
      "assert(e.type == 'application/octet-stream', r.body)\n"
      "-- a Content-Type of the script's wins\n"
      "r = assert(http.post(URL .. '/upload', tghost.InputFile{ data = 'a,b' },\n"
      "                     { headers = { ['content-type'] = 'text/csv' } }))\n"
      "e = tghost.json.decode(r.body)\n"
      "assert(e.bytes == 3 and e.type == 'text/csv', r.body)\n"
      "-- in memory InputFile\n"
      "r = assert(http.post(URL .. '/echo', tghost.InputFile{ data = 'hello' }))\n"
      "assert(r.body == 'hello', r.body)\n"
      "-- an upload and a streamed answer\n"
      "local words = { 'one ', 'two ', 'three' }\n"
      "local k = 0\n"
      "local res = assert(http.stream{ method = 'POST', url = URL .. '/echo?chunk=3&every_ms=20',\n"
      "  body = function() k = k + 1; return words[k] end })\n"
      "local got = {}\n"
      "for c in res:chunks() do got[#got + 1] = c end\n"
      "assert(table.concat(got) == 'one two three', table.concat(got))\n"
      "assert(#got >= 3, #got .. ' pieces')\n"
      "-- a body function that fails raises, and the transfer ends\n"
      "local ok, err = pcall(http.request, { method = 'POST', url = URL .. '/upload',\n"
      "  body = function() error('no more data') end })\n"
      "assert(not ok and tostring(err):find('no more data'), tostring(err))\n"
      "ok, err = pcall(http.request, { method = 'POST', url = URL .. '/upload',\n"
      "  body = function() return 42 end })\n"
      "assert(not ok and tostring(err):find('must return strings'), tostring(err))\n"
      "-- a missing file raises\n"
      "assert(not pcall(http.post, URL .. '/upload', tghost.InputFile('/nonexistent/x')))\n"
      "print('ALL OK')\n", path.data, SIZE, want);
  run_checks("upload.lua", fmt.data);
  buf_free(&fmt);
  unlink(path.data);
  buf_free(&path);
}

/* --- server-sent events -------------------------------------------------- */

TEST(sse_events) {
  run_checks("sse.lua",
      "local URL = '%s'\n"
      "local http = tghost.http\n"
      "-- the server sends this text back as an event stream, 7 bytes at a time\n"
      "local text = ': hello\\r\\n\\r\\nevent: add\\ndata: 1\\ndata: 2\\nid: 9\\n\\n'\n"
      "  .. 'data: caf\\xc3\\xa9\\rretry: 2500\\r\\r'\n"
      "  .. 'data:no space\\n\\ndata: unfinished'\n"
      "local got = {}\n"
      "for ev in http.sse{ method = 'POST', url = URL .. '/echo?chunk=7&type=text%%2Fevent-stream',\n"
      "                    body = text } do\n"
      "  got[#got + 1] = string.format('%%s|%%s|%%s|%%s', ev.event, ev.data, tostring(ev.id),\n"
      "                                tostring(ev.retry))\n"
      "end\n"
      "local want = { 'add|1\\n2|9|nil', 'message|caf\\xc3\\xa9|9|2500', 'message|no space|9|2500' }\n"
      "assert(#got == #want, #got .. ' events: ' .. table.concat(got, ' / '))\n"
      "for i = 1, #want do assert(got[i] == want[i], got[i]) end\n"
      "-- the model API, as a bot reads it\n"
      "local words = {}\n"
      "local events, res = http.sse{ method = 'POST', url = URL .. '/v1/chat/completions',\n"
      "  body = { stream = true, messages = { { role = 'user', content = 'hi' } } } }\n"
      "assert(res.status == 200)\n"
      "for ev in events, res do\n"
      "  if ev.data == '[DONE]' then break end\n"
      "  words[#words + 1] = tghost.json.decode(ev.data).choices[1].delta.content\n"
      "end\n"
      "local answer = table.concat(words)\n"
      "assert(answer == 'You said: hi. We have exchanged 1 messages.', answer)\n"
      "-- failures raise, with the status and the body\n"
      "local ok, err = pcall(function() for _ in http.sse{ url = URL .. '/status?code=401' } do end end)\n"
      "assert(not ok and err:find('HTTP 401: {\"error\":\"status 401\"}', 1, true), err)\n"
      "ok, err = pcall(function() for _ in http.sse{ url = URL .. '/stream?bytes=5' } do end end)\n"
      "assert(not ok and err:find('not an event stream'), err)\n"
      "ok, err = pcall(function() for _ in http.sse{ url = 'http://127.0.0.1:1/' } do end end)\n"
      "assert(not ok and err:find('tghost.http.sse'), err)\n"
      "-- an event past max_event fails the stream\n"
      "ok, err = pcall(function()\n"
      "  for _ in http.sse{ method = 'POST', max_event = 100,\n"
      "    url = URL .. '/echo?type=text%%2Fevent-stream', body = 'data: ' .. string.rep('z', 500) .. '\\n\\n' } do end\n"
      "end)\n"
      "assert(not ok and err:find('max_event'), err)\n"
      "-- silence between events\n"
      "ok, err = pcall(function()\n"
      "  for _ in http.sse{ url = URL .. '/silent?head=1', idle_timeout = 0.2 } do end\n"
      "end)\n"
      "assert(not ok and err:find('idle timeout'), err)\n"
      "print('ALL OK')\n");
}

/* --- backpressure ------------------------------------------------------- */

/* 100 MB through a handler that reads slower than the network delivers:
 * tghost's peak RSS stays within a few MB of what it was before. */
TEST_SERIAL(backpressure_100mb) {
  struct fakeapi *api = harness_api();
#ifdef TGHOST_SANITIZE
  /* ASan keeps freed memory in quarantine (256 MB by default): every
   * chunk read would stay counted. A small one measures tghost. */
  const char *was = getenv("ASAN_OPTIONS");
  struct buf opts = BUF_INIT;
  buf_printf(&opts, "%s%squarantine_size_mb=1", was ? was : "",
             was && *was ? ":" : "");
  setenv("ASAN_OPTIONS", opts.data, 1);
  buf_free(&opts);
#endif
  const char *script = write_script("slowreader.lua",
      "local URL = '%s'\n"
      "bot.on('message', function(ctx)\n"
      "  local res = assert(tghost.http.stream{ url = URL .. '/stream?bytes=104857600&chunk=65536' })\n"
      "  local n, reads, owed = 0, 0, 0\n"
      "  -- about 50 MB/s: far slower than loopback delivers\n"
      "  for chunk in res:chunks() do\n"
      "    n, reads, owed = n + #chunk, reads + 1, owed + #chunk\n"
      "    if owed >= 1048576 then tghost.sleep(0.02); owed = 0 end\n"
      "  end\n"
      "  ctx:reply(string.format('%%d bytes in %%d reads', n, reads))\n"
      "end)\n"
      "run(bot)\n");
  struct proc *p = proc_start(script, NULL);
  wait_polling();
  run_for(300);
  long before = proc_peak_rss_kib(p);
  uint64_t t0 = harness_now_ms();
  fakeapi_push_text(api, 5, 5, "go");
  wait_calls("sendMessage", 1, 120000);
  double took = (harness_now_ms() - t0) / 1000.0;
  long after = proc_peak_rss_kib(p);
  char *text = fake_call_string(nth_call("sendMessage", 0), "text");
  CHECK(text && strncmp(text, "104857600 bytes", 15) == 0, "reply: %s", text);
  fprintf(stderr, "backpressure: 100 MiB in %.1f s (%s); peak RSS %ld KiB "
          "before, %ld KiB after (+%ld KiB)\n", took, text, before, after,
          after - before);
  free(text);
  CHECK(before > 0 && after - before < 6 * 1024,
        "peak RSS grew by %ld KiB while a slow reader took 100 MiB",
        after - before);
  proc_stop_cleanly(p);
}

/* --- cancellation -------------------------------------------------------- */

static bool stream_dropped(void *ud) {
  const struct fakemodel_stream *s = fakemodel_stream(the_model(), *(size_t *)ud);
  return s && s->dropped_us;
}

/* A handler that stops reading (break), that returns with its stream
 * open, and one cancelled by its timeout: each transfer is closed at
 * once, and the server sees the connection go. */
TEST(cancel_closes_transfer) {
  struct fakeapi *api = harness_api();
  struct fakemodel *m = the_model();
  /* Events every 50 ms for 100 s: nothing ends them but the client. */
  const char *script = write_script("cancel.lua",
      "local URL = '%s'\n"
      "local function open()\n"
      "  return tghost.http.sse{ url = URL .. '/echo?chunk=12&every_ms=50&type=text%%2Fevent-stream',\n"
      "    method = 'POST', body = string.rep('data: tick\\n\\n', 2000) }\n"
      "end\n"
      "bot.command('brk', function(ctx)\n"
      "  local n = 0\n"
      "  for ev in open() do n = n + 1; if n == 3 then break end end\n"
      "  ctx:reply('broke after ' .. n)\n"
      "  tghost.sleep(5)\n"
      "end)\n"
      "bot.command('leave', function(ctx)\n"
      "  local events = open()\n"
      "  events()\n"
      "  ctx:reply('leaving')\n"
      "end)\n"
      "bot.command('hang', function(ctx)\n"
      "  ctx:reply('hanging')\n"
      "  for ev in open() do end\n"
      "end)\n"
      "run(bot, { sink = { timeout = { milliseconds = 1500 } } })\n");
  struct proc *p = proc_start(script, NULL);
  wait_polling();

  /* break: the loop's closing value ends the transfer. */
  size_t idx = fakemodel_stream_count(m);
  fakeapi_push_text(api, 1, 1, "/brk");
  wait_calls("sendMessage", 1, 20000);
  uint64_t replied = nth_call("sendMessage", 0)->received_us;
  CHECK(run_until(stream_dropped, &idx, 3000), "the server never saw the "
        "break's connection drop");
  const struct fakemodel_stream *s = fakemodel_stream(m, idx);
  double lag = ((double)s->dropped_us - (double)replied) / 1000.0;
  fprintf(stderr, "cancel: break -> drop %.1f ms after the reply\n", lag);
  CHECK(lag < 200, "the drop came %.1f ms after the break", lag);

  /* The handler returns with its stream open: closed with its job. */
  idx = fakemodel_stream_count(m);
  fakeapi_push_text(api, 2, 2, "/leave");
  wait_calls("sendMessage", 2, 20000);
  replied = nth_call("sendMessage", 1)->received_us;
  CHECK(run_until(stream_dropped, &idx, 3000), "a stream outlived its "
        "handler");
  s = fakemodel_stream(m, idx);
  lag = ((double)s->dropped_us - (double)replied) / 1000.0;
  fprintf(stderr, "cancel: handler end -> drop %.1f ms after its reply\n", lag);
  CHECK(lag < 200, "the drop came %.1f ms after the handler ended", lag);

  /* Cancelled by the timeout while it waits for events. */
  idx = fakemodel_stream_count(m);
  fakeapi_push_text(api, 3, 3, "/hang");
  wait_calls("sendMessage", 3, 20000);
  replied = nth_call("sendMessage", 2)->received_us;
  CHECK(run_until(stream_dropped, &idx, 6000), "the cancelled handler's "
        "stream stayed open");
  s = fakemodel_stream(m, idx);
  double after = ((double)s->dropped_us - (double)replied) / 1000.0;
  fprintf(stderr, "cancel: timeout (1500 ms) -> drop %.1f ms after the "
          "handler started\n", after);
  CHECK(after > 1000 && after < 2300, "the drop came %.1f ms after the "
        "handler started (timeout 1500 ms)", after);
  wait_stderr(p, "timed out", 5000);
  CHECK(fakemodel_open_streams(m) == 0, "%zu streams still open",
        fakemodel_open_streams(m));
  proc_stop_cleanly(p);
}

/* --- ctx:replyStream ------------------------------------------------------ */

/* The bot behind the replyStream tests: /words N EVERY_MS [draft|edit]
 * streams N words; /long streams 10,500 characters with formatted pieces;
 * /fail raises after five words. */
static const char *reply_stream_bot(void) {
  return harness_write("stream_bot.lua",
      "local function words(n, every)\n"
      "  local i = 0\n"
      "  return function()\n"
      "    i = i + 1\n"
      "    if i > n then return nil end\n"
      "    tghost.sleep(every)\n"
      "    return 'w' .. i .. ' '\n"
      "  end\n"
      "end\n"
      "bot.command('words', function(ctx)\n"
      "  local n, ms, mode = ctx.match:match('^(%d+) (%d+) ?(%a*)$')\n"
      "  local opts = { interval = 0.2 }\n"
      "  if mode == 'draft' then opts.draft = true elseif mode == 'edit' then opts.draft = false end\n"
      "  local msgs = ctx:replyStream(words(tonumber(n), tonumber(ms) / 1000), opts)\n"
      "  ctx:reply('done ' .. #msgs)\n"
      "end)\n"
      "bot.command('long', function(ctx)\n"
      "  local i = 0\n"
      "  local msgs = ctx:replyStream(function()\n"
      "    i = i + 1\n"
      "    if i > 800 then return nil end\n"
      "    if i % 50 == 0 then tghost.sleep(0.01) end\n"
      "    if i % 7 == 0 then\n"
      "      -- formatted text: tghost.fmt values (text and entities)\n"
      "      return tghost.fmt(tghost.fmt.bold('bold😀'), ' ')\n"
      "    end\n"
      "    if i % 40 == 0 then return 'end of a paragraph.\\n\\n' end\n"
      "    return 'ünïcödé words '\n"
      "  end, { interval = 0.05 })\n"
      "  ctx:reply('done ' .. #msgs)\n"
      "end)\n"
      "bot.command('fail', function(ctx)\n"
      "  local i = 0\n"
      "  local ok, err = pcall(ctx.replyStream, ctx, function()\n"
      "    i = i + 1\n"
      "    if i > 5 then error('the model went away') end\n"
      "    return 'w' .. i .. ' '\n"
      "  end)\n"
      "  ctx:reply(ok and 'no error' or ('raised: ' .. tostring(err):match('the model went away')))\n"
      "end)\n"
      "run(bot)\n");
}

static char *call_text(const struct fake_call *c) {
  char *t = fake_call_string(c, "text");
  CHECK(t, "a %s call without text", c->method);
  return t;
}

/* Private chat: drafts while it grows (one draft id, each a prefix of the
 * answer, at most one per interval), then one sendMessage. */
TEST(reply_stream_draft) {
  struct fakeapi *api = harness_api();
  struct proc *p = proc_start(reply_stream_bot(), NULL);
  wait_polling();
  fakeapi_push_text(api, 42, 42, "/words 30 50");   /* 1.5 s of words */
  wait_calls("sendMessage", 2, 20000);
  const struct fake_call *final = nth_call("sendMessage", 0);
  char *text = call_text(final);
  struct buf want = BUF_INIT;
  for (int i = 1; i <= 30; i++) buf_printf(&want, "w%d ", i);
  want.data[--want.len] = '\0';   /* the trailing space is trimmed */
  CHECK(strcmp(text, want.data) == 0, "final text '%s'", text);
  size_t drafts = fakeapi_count_method(api, "sendMessageDraft");
  CHECK(drafts >= 4 && drafts <= 10, "%zu drafts for 1.5 s at one per 0.2 s",
        drafts);
  CHECK(fakeapi_count_method(api, "editMessageText") == 0, "edits in a "
        "private chat");
  int64_t draft_id = 0;
  uint64_t last_us = 0;
  size_t last_len = 0;
  for (size_t i = 0; i < drafts; i++) {
    const struct fake_call *d = nth_call("sendMessageDraft", i);
    int64_t id = 0;
    CHECK(fake_call_int(d, "draft_id", &id) && id != 0, "draft_id");
    if (i == 0) draft_id = id;
    CHECK(id == draft_id, "a new draft id mid-answer");
    char *dt = call_text(d);
    CHECK(strncmp(want.data, dt, strlen(dt)) == 0 && strlen(dt) > last_len,
          "draft %zu '%s' is not a longer prefix of the answer", i, dt);
    last_len = strlen(dt);
    free(dt);
    /* Sent 200 ms apart at least; arrival times add the transit's
     * jitter, so the bound leaves it 100 ms. */
    if (i > 0)
      CHECK(d->received_us - last_us >= 100000, "two drafts %.0f ms apart",
            (d->received_us - last_us) / 1000.0);
    last_us = d->received_us;
    CHECK(d->received_us < final->received_us, "a draft after the final "
          "message");
  }
  char *done = call_text(nth_call("sendMessage", 1));
  CHECK(strcmp(done, "done 1") == 0, "%s", done);
  fprintf(stderr, "reply_stream: %zu drafts, then the message\n", drafts);
  free(done);
  free(text);
  buf_free(&want);
  proc_stop_cleanly(p);
}

static enum fake_fault edit_faults(void *ud, const char *method, uint64_t nth) {
  /* The first two edits fail: a server error, then a flood limit. */
  if (strcmp(method, "editMessageText") == 0 && nth == 0) return FAULT_500;
  if (strcmp(method, "editMessageText") == 0 && nth == 1) return FAULT_429;
  return FAULT_NONE;
}

/* A group: one message, edited at most once per interval; failed edits are
 * skipped, the last edit carries the whole answer. A group refuses drafts
 * (draft = true): the answer falls back to edits. */
TEST(reply_stream_edits) {
  struct fakeapi *api = harness_api();
  fakeapi_set_fault_fn(api, edit_faults, NULL);
  fakeapi_set_fault_retry_after(api, 1);
  struct proc *p = proc_start(reply_stream_bot(), NULL);
  wait_polling();
  fakeapi_push_text(api, -100, 42, "/words 30 50 draft");
  wait_calls("sendMessage", 2, 20000);
  struct buf want = BUF_INIT;
  for (int i = 1; i <= 30; i++) buf_printf(&want, "w%d ", i);
  want.data[--want.len] = '\0';
  size_t edits = fakeapi_count_method(api, "editMessageText");
  size_t drafts = fakeapi_count_method(api, "sendMessageDraft");
  CHECK(drafts == 1, "%zu drafts to a group that refuses them", drafts);
  CHECK(edits >= 4 && edits <= 10, "%zu edits for 1.5 s at one per 0.2 s",
        edits);
  const struct fake_call *first = nth_call("sendMessage", 0);
  char *ft = call_text(first);
  CHECK(strncmp(want.data, ft, strlen(ft)) == 0, "first message '%s'", ft);
  free(ft);
  const struct fake_call *last = nth_call("editMessageText", edits - 1);
  char *lt = call_text(last);
  CHECK(strcmp(lt, want.data) == 0, "the last edit '%s'", lt);
  free(lt);
  char *done = call_text(nth_call("sendMessage", 1));
  CHECK(strcmp(done, "done 1") == 0, "the reply failed: %s", done);
  free(done);
  fprintf(stderr, "reply_stream: a group: 1 message, %zu edits (2 failed)\n",
          edits);
  buf_free(&want);
  proc_stop_cleanly(p);
}

/* UTF-16 units of UTF-8 text, as Telegram counts. */
static size_t utf16_units(const char *s) {
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if ((*p & 0xC0) != 0x80) n++;
    if (*p >= 0xF0) n++;
  }
  return n;
}

/* 10,500 characters: several messages, each within 4096 UTF-16 units and
 * valid UTF-8, with every bold entity whole and inside its message; and
 * every draft along the way valid too. */
TEST(reply_stream_long) {
  struct fakeapi *api = harness_api();
  struct proc *p = proc_start(reply_stream_bot(), NULL);
  wait_polling();
  fakeapi_push_text(api, 43, 43, "/long");
  wait_calls("sendMessage", 4, 30000);
  size_t messages = fakeapi_count_method(api, "sendMessage") - 1;
  char *done = call_text(nth_call("sendMessage", messages));
  char want_done[32];
  snprintf(want_done, sizeof want_done, "done %zu", messages);
  CHECK(strcmp(done, want_done) == 0, "%s after %zu messages", done, messages);
  free(done);
  CHECK(messages >= 3, "%zu messages for 10,000 characters", messages);
  size_t total = 0, bolds = 0;
  struct fakeapi *a = api;
  for (size_t i = 0; i < fakeapi_call_count(a); i++) {
    const struct fake_call *c = fakeapi_call(a, i);
    bool final = strcmp(c->method, "sendMessage") == 0;
    if (!final && strcmp(c->method, "sendMessageDraft") != 0) continue;
    char *t = call_text(c);
    if (final && strncmp(t, "done", 4) == 0) {
      free(t);
      continue;
    }
    size_t units = utf16_units(t);
    CHECK(units <= 4096, "a %s of %zu units", c->method, units);
    struct buf clean = BUF_INIT;
    sse_utf8_clean(t, strlen(t), &clean);
    CHECK(clean.len == strlen(t), "a %s with invalid UTF-8", c->method);
    buf_free(&clean);
    /* Entities: whole bold runs ("bold😀" is 6 units) inside the text. */
    char *ents = fake_call_raw(c, "entities");
    /* Each entity object, its members in any order. */
    for (char *e = ents; e && (e = strchr(e, '{')); e++) {
      char *close = strchr(e, '}');
      if (close) *close = '\0';
      const char *o = strstr(e, "\"offset\":");
      const char *l = strstr(e, "\"length\":");
      long off = o ? strtol(o + 9, NULL, 10) : -1;
      long len = l ? strtol(l + 9, NULL, 10) : -1;
      if (close) *close = '}';
      CHECK(len == 6 && off >= 0 && (size_t)(off + len) <= units,
            "an entity %ld+%ld in a text of %zu units", off, len, units);
      if (final) bolds++;
    }
    free(ents);
    if (final) total += units;
    free(t);
  }
  /* 800 pieces, 114 of them bold; the cuts drop a few spaces. */
  CHECK(bolds == 114, "%zu bold entities in the final messages", bolds);
  CHECK(total > 10400, "only %zu units in the final messages", total);
  fprintf(stderr, "reply_stream: %zu units in %zu messages, %zu drafts\n",
          total, messages, fakeapi_count_method(api, "sendMessageDraft"));
  proc_stop_cleanly(p);
}

/* A source that raises: the text so far becomes the final message and the
 * error reaches the handler. */
TEST(reply_stream_source_fails) {
  struct fakeapi *api = harness_api();
  struct proc *p = proc_start(reply_stream_bot(), NULL);
  wait_polling();
  fakeapi_push_text(api, 44, 44, "/fail");
  wait_calls("sendMessage", 2, 20000);
  char *t0 = call_text(nth_call("sendMessage", 0));
  char *t1 = call_text(nth_call("sendMessage", 1));
  CHECK(strcmp(t0, "w1 w2 w3 w4 w5") == 0, "final '%s'", t0);
  CHECK(strcmp(t1, "raised: the model went away") == 0, "reply '%s'", t1);
  free(t0);
  free(t1);
  proc_stop_cleanly(p);
}

/* --- the model-backed chat bot (examples/chat.lua, docs/guide/io.md's) --------- */

/* Its transcript in the sandbox, against the fake model server: an SSE API
 * in, a streamed reply out, the history in the session. */
TEST(example_chat) {
  struct buf env = BUF_INIT;
  buf_printf(&env, "MODEL_URL=%s", fakemodel_url(the_model()));
  const char *envv[] = {env.data, NULL};
  const char *args[] = {"--sandbox", "--script",
                        TGHOST_SOURCE_DIR "/examples/chat.chat", NULL};
  struct proc *p = proc_start_env(TGHOST_SOURCE_DIR "/examples/chat.lua", args,
                                  envv, false);
  CHECK(proc_wait(p, 60000), "tghost did not exit");
  CHECK(proc_status(p) == 0, "the transcript failed (status %d)",
        proc_status(p));
  CHECK(fakemodel_stream_count(the_model()) == 3, "%zu model requests",
        fakemodel_stream_count(the_model()));
  const struct fakemodel_stream *s = fakemodel_stream(the_model(), 1);
  CHECK(s->messages == 3 && s->tokens_sent > 1, "the second question sent %d "
        "messages and got %d tokens", s->messages, s->tokens_sent);
  proc_check_clean(p);
  buf_free(&env);
}
