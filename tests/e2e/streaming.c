/* Streaming I/O end to end: tghost.http.stream and tghost.http.sse against
 * the fake model server (tests/support/fakemodel.c), bodies uploaded from
 * a function or a file, backpressure (a 100 MB body through a slow
 * reader), timeouts, and transfers closed when their handler stops
 * reading, ends or is cancelled; ctx:replyStream against the fake Bot
 * API. */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
      "local first = res:read()\n"
      "local waited = tghost.now() - t0\n"
      "assert(first == 'a' and waited < 0.5, 'the first byte took ' .. waited)\n"
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
      "-- a file, streamed from disk\n"
      "r = assert(http.post(URL .. '/upload', tghost.InputFile('%s')))\n"
      "e = tghost.json.decode(r.body)\n"
      "assert(e.bytes == %d and e.fnv1a64 == '%s', r.body)\n"
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
