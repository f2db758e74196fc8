/* tghost.http and the HTTP client end to end: a slow endpoint delays
 * nobody else; tghost.http's contract (queries, bodies, methods, errors,
 * timeouts, limits, misuse, parallel requests); a 50 MB upload streamed
 * byte-identical; downloads to disk; 50 requests multiplexed over one
 * HTTP/2 connection with the peer verified (nghttpd); the long poll on a
 * connection pool of its own. */
#include <signal.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "calls.h"

/* Writes a script with "%s" replaced by the fake server's URL. */
static const char *write_script(const char *name, const char *fmt) {
  struct buf text = BUF_INIT;
  buf_printf(&text, fmt, fakeapi_url(harness_api()));
  const char *path = harness_write(name, text.data);
  buf_free(&text);
  return path;
}

/* Big files outside harness_write; removed even when a check fails. */
static char *big_files[8];

static void remove_big_files(void) {
  for (int i = 0; i < 8; i++) {
    if (!big_files[i]) continue;
    unlink(big_files[i]);
    free(big_files[i]);
    big_files[i] = NULL;
  }
}

static const char *track_big_file(const char *name) {
  static bool registered;
  if (!registered) {
    atexit(remove_big_files);
    registered = true;
  }
  for (int i = 0; i < 8; i++) {
    if (big_files[i]) continue;
    struct buf path = BUF_INIT;
    buf_printf(&path, "%s/%s", harness_tmpdir(), name);
    big_files[i] = buf_steal(&path, NULL);
    return big_files[i];
  }
  fprintf(stderr, "too many big files\n");
  exit(1);
}

/* Deterministic pseudo-random bytes. */
static void fill_bytes(char *p, size_t n, uint64_t seed) {
  uint64_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p[i] = (char)(x >> 24);
  }
}

/* A handler waiting 2 s on a slow HTTP endpoint delays nobody else. */
TEST(slow_http) {
  struct fakeapi *api = harness_api();
  const char *script = write_script("slowhttp.lua",
      "local URL = '%s'\n"
      "bot.on('message', function(ctx)\n"
      "  if ctx.msg.text == 'slow' then\n"
      "    local t0 = tghost.now()\n"
      "    local res, err = tghost.http.get(URL .. '/http/echo?ms=2000')\n"
      "    ctx:reply(string.format('slow %%s %%d %%.2f', res and 'ok' or err,\n"
      "              res and res.status or 0, tghost.now() - t0))\n"
      "  else\n"
      "    ctx:reply('fast ' .. ctx.msg.text)\n"
      "  end\n"
      "end)\n"
      "run(bot)\n");
  fakeapi_push_text(api, 1, 1, "slow");
  enum { FAST = 20 };
  for (int i = 0; i < FAST; i++) {
    char text[16];
    snprintf(text, sizeof text, "%d", i);
    fakeapi_push_text(api, 100 + i, 1, text);
  }
  struct proc *p = proc_start(script, NULL);
  wait_calls("sendMessage", FAST + 1, 20000);
  const struct fake_call *slow = NULL;
  uint64_t last_fast = 0;
  for (int i = 0; i <= FAST; i++) {
    const struct fake_call *c = nth_call("sendMessage", (size_t)i);
    char *t = fake_call_string(c, "text");
    if (strncmp(t, "slow", 4) == 0) slow = c;
    else if (c->received_us > last_fast) last_fast = c->received_us;
    free(t);
  }
  CHECK(slow, "no reply to the slow update");
  char *t = fake_call_string(slow, "text");
  double took = 0;
  CHECK(sscanf(t, "slow ok 200 %lf", &took) == 1, "slow reply was '%s'", t);
  CHECK(took >= 1.95 && took < 10, "the slow request took %.2f s", took);
  free(t);
  double lead = (double)((int64_t)slow->received_us - (int64_t)last_fast) / 1e6;
  fprintf(stderr, "slow_http: the last fast reply came %.2f s before the "
          "slow one\n", lead);
  CHECK(lead > 1.0, "fast replies were held up: the last came only %.2f s "
        "before the slow one", lead);
  CHECK(fakeapi_http_requests(api) == 1, "%zu HTTP requests",
        fakeapi_http_requests(api));
  proc_stop_cleanly(p);
}

/* tghost.http's contract, from a script that runs at the top level. */
TEST(http_client) {
  harness_api();
  const char *script = write_script("http.lua",
      "local URL = '%s'\n"
      "local json = tghost.json\n"
      "local http = tghost.http\n"
      "-- GET with a query and headers\n"
      "local r = assert(http.request{ url = URL .. '/http/echo',\n"
      "  query = { q = 'a b&c', n = 5, list = { 1, 2 } },\n"
      "  headers = { ['X-Test'] = 'yes' } })\n"
      "assert(r.status == 200, r.status)\n"
      "assert(r.headers['content-type'] == 'application/json', r.headers['content-type'])\n"
      "local e = json.decode(r.body)\n"
      "assert(e.method == 'GET', e.method)\n"
      "assert(e.query == 'list=1&list=2&n=5&q=a%%20b%%26c', e.query)\n"
      "assert(e.head:find('X-Test: yes', 1, true), e.head)\n"
      "-- POST: a table body goes as JSON, a string as it is\n"
      "r = assert(http.post(URL .. '/http/echo', { id = 4503599627370497 }))\n"
      "e = json.decode(r.body)\n"
      "assert(e.method == 'POST' and e.body == '{\"id\":4503599627370497}', r.body)\n"
      "assert(e.head:find('Content-Type: application/json', 1, true), e.head)\n"
      "r = assert(http.request{ method = 'PUT', url = URL .. '/http/echo', body = 'raw' })\n"
      "e = json.decode(r.body)\n"
      "assert(e.method == 'PUT' and e.body == 'raw', r.body)\n"
      "r = assert(http.request{ method = 'HEAD', url = URL .. '/http/echo' })\n"
      "assert(r.status == 200 and r.body == '', 'HEAD: ' .. r.status)\n"
      "r = assert(http.get(URL .. '/http/echo'))\n"
      "assert(json.decode(r.body).method == 'GET', 'the connection after HEAD')\n"
      "-- an HTTP error status is a response\n"
      "r = assert(http.get(URL .. '/http/echo?status=404'))\n"
      "assert(r.status == 404, r.status)\n"
      "-- expected failures: nil, message\n"
      "local t0 = tghost.now()\n"
      "local res, err = http.get(URL .. '/http/echo?ms=3000', { timeout = 0.3 })\n"
      "assert(res == nil and err:find('timed out'), err)\n"
      "assert(tghost.now() - t0 < 2, 'the timeout was not kept')\n"
      "res, err = http.get(URL .. '/http/echo?bytes=5000', { max_body = 1000 })\n"
      "assert(res == nil and err:find('max_body'), err)\n"
      "r = assert(http.get(URL .. '/http/echo?bytes=5000', { max_body = 5000 }))\n"
      "assert(#r.body == 5000)\n"
      "res, err = http.get('http://127.0.0.1:1/')\n"
      "assert(res == nil and type(err) == 'string', 'connection refused: ' .. tostring(err))\n"
      "-- misuse raises\n"
      "assert(not pcall(http.get, 'ftp://example.com/'))\n"
      "assert(not pcall(http.request, { url = URL, bogus = 1 }))\n"
      "assert(not pcall(http.request, { url = URL, headers = { ['X'] = 'a\\r\\nb' } }))\n"
      "assert(not pcall(http.request, { url = URL, timeout = -1 }))\n"
      "-- ten requests at once, each 0.5 s\n"
      "t0 = tghost.now()\n"
      "local list = {}\n"
      "for i = 1, 10 do\n"
      "  list[i] = function()\n"
      "    return assert(http.get(URL .. '/http/echo?ms=500')).status\n"
      "  end\n"
      "end\n"
      "local statuses = tghost.all(list)\n"
      "assert(#statuses == 10 and statuses[10] == 200)\n"
      "local took = tghost.now() - t0\n"
      "assert(took < 2.5, 'ten parallel requests took ' .. took)\n"
      "print('ALL OK', string.format('%%.2f', took))\n");
  struct proc *p = proc_start(script, NULL);
  CHECK(proc_wait(p, 30000), "the script did not finish");
  CHECK(proc_status(p) == 0, "exit status %d", proc_status(p));
  CHECK(strstr(proc_stdout(p), "ALL OK"), "the script did not finish its checks");
  proc_check_clean(p);
}

/* --- files -------------------------------------------------------------- */

/* A 50 MB upload arrives byte-identical without tghost holding it in
 * memory; files nested in sendMediaGroup go as attach://. */
TEST(upload_50mb) {
  struct fakeapi *api = harness_api();
  enum { SIZE = 50 * 1024 * 1024 };
  const char *path = track_big_file("big.bin");
  char *data = xmalloc(SIZE);
  fill_bytes(data, SIZE, 7);
  uint64_t sum = fake_fnv1a64(data, SIZE);
  FILE *f = fopen(path, "wb");
  CHECK(f && fwrite(data, 1, SIZE, f) == SIZE && fclose(f) == 0,
        "cannot write %s", path);
  free(data);
  struct buf text = BUF_INIT;
  buf_printf(&text,
      "bot.on('message', function(ctx)\n"
      "  local m = bot.api.sendDocument{ chat_id = ctx.chat.id,\n"
      "    document = tghost.InputFile('%s'), caption = 'big',\n"
      "    reply_parameters = { message_id = ctx.msg.message_id } }\n"
      "  bot.api.sendMediaGroup{ chat_id = ctx.chat.id, media = {\n"
      "    { type = 'photo', media = tghost.InputFile{ data = 'PNGDATA', filename = 'a.png' } },\n"
      "    { type = 'photo', media = 'existing-file-id' } } }\n"
      "  ctx:reply('done')\n"
      "end)\n"
      "run(bot)\n", path);
  const char *script = harness_write("upload.lua", text.data);
  buf_free(&text);
  struct proc *p = proc_start(script, NULL);
  wait_polling();
  run_for(300);
  long before = proc_peak_rss_kib(p);
  fakeapi_push_text(api, 42, 42, "upload");
  uint64_t start = harness_now_ms();
  wait_calls("sendMessage", 1, 60000);
  double took = (harness_now_ms() - start) / 1000.0;
  long after = proc_peak_rss_kib(p);

  const struct fake_call *doc = nth_call("sendDocument", 0);
  CHECK(doc, "no sendDocument call");
  char *chat = fake_call_string(doc, "chat_id");
  char *caption = fake_call_string(doc, "caption");
  char *reply = fake_call_string(doc, "reply_parameters");
  char *file = fake_call_raw(doc, "document");
  char want[160];
  snprintf(want, sizeof want,
           "{\"filename\":\"big.bin\",\"size\":%d,\"fnv1a64\":\"%016llx\"",
           SIZE, (unsigned long long)sum);
  CHECK(file && strncmp(file, want, strlen(want)) == 0,
        "document part was %s, expected %s...", file ? file : "(none)", want);
  CHECK(chat && strcmp(chat, "42") == 0, "chat_id field was %s", chat);
  CHECK(caption && strcmp(caption, "big") == 0, "caption was %s", caption);
  CHECK(reply && strcmp(reply, "{\"message_id\":1000}") == 0,
        "reply_parameters was %s", reply);
  free(chat);
  free(caption);
  free(reply);
  free(file);

  const struct fake_call *group = nth_call("sendMediaGroup", 0);
  CHECK(group, "no sendMediaGroup call");
  char *media = fake_call_string(group, "media");
  char *part = fake_call_raw(group, "tghost_file_0");
  CHECK(media && strstr(media, "\"media\":\"attach://tghost_file_0\"") &&
            strstr(media, "\"media\":\"existing-file-id\""),
        "media was %s", media);
  snprintf(want, sizeof want,
           "{\"filename\":\"a.png\",\"size\":7,\"fnv1a64\":\"%016llx\"",
           (unsigned long long)fake_fnv1a64("PNGDATA", 7));
  CHECK(part && strncmp(part, want, strlen(want)) == 0, "attached part was %s",
        part ? part : "(none)");
  free(media);
  free(part);

  long growth = after - before;
  fprintf(stderr, "upload: 50 MiB in %.2f s; peak RSS %ld KiB before, %ld KiB "
          "after (+%ld KiB)\n", took, before, after, growth);
  CHECK(before > 0 && growth < 16 * 1024,
        "peak RSS grew by %ld KiB during a 50 MiB upload", growth);
  proc_stop_cleanly(p);
}

/* ctx:getFile() and tghost.download stream a file to disk; a missing file,
 * a bad file_id and a local Bot API server's absolute path fail clearly. */
TEST(download) {
  struct fakeapi *api = harness_api();
  enum { SIZE = 20 * 1024 * 1024 };
  char *data = xmalloc(SIZE);
  fill_bytes(data, SIZE, 11);
  uint64_t sum = fake_fnv1a64(data, SIZE);
  fakeapi_add_file(api, "doc1", data, SIZE);
  free(data);
  const char *dest = track_big_file("downloaded.bin");
  const char *missing = track_big_file("missing.bin");
  struct buf text = BUF_INIT;
  buf_printf(&text,
      "bot.on('message:document', function(ctx)\n"
      "  local file = ctx:getFile()\n"
      "  local path, size = tghost.download(file, '%s')\n"
      "  local p2, err = tghost.download('files/nothing', '%s')\n"
      "  local ok, e = pcall(tghost.download, { file_id = 'bogus' }, '%s')\n"
      "  local ok3, e3 = pcall(tghost.download, '/srv/tg/doc.bin', '%s')\n"
      "  local local_api = not ok3 and tostring(e3):find('runs with --local', 1, true)\n"
      "  ctx:reply(string.format('%%s|%%s|%%s|%%s|%%s|%%s', tostring(path),\n"
      "    tostring(size), tostring(p2), tostring(err), tostring(e.error_code),\n"
      "    local_api and 'local path refused' or tostring(e3)))\n"
      "end)\n"
      "run(bot)\n", dest, missing, missing, missing);
  const char *script = harness_write("download.lua", text.data);
  buf_free(&text);
  struct proc *p = proc_start(script, NULL);
  wait_polling();
  run_for(300);
  long before = proc_peak_rss_kib(p);
  fakeapi_push_update(api,
      "\"message\":{\"message_id\":5,\"from\":{\"id\":42,\"is_bot\":false,"
      "\"first_name\":\"U\"},\"chat\":{\"id\":42,\"type\":\"private\"},"
      "\"date\":1,\"document\":{\"file_id\":\"doc1\",\"file_unique_id\":"
      "\"u1\",\"file_name\":\"d.bin\"}}");
  wait_calls("sendMessage", 1, 60000);
  long after = proc_peak_rss_kib(p);
  char *reply = fake_call_string(nth_call("sendMessage", 0), "text");
  char want[512];
  snprintf(want, sizeof want,
           "%s|%d|nil|download failed: HTTP 404 (no such file)|400|"
           "local path refused", dest,
           SIZE);
  CHECK(reply && strcmp(reply, want) == 0, "reply was '%s', expected '%s'",
        reply, want);
  CHECK(!strstr(reply, TEST_TOKEN), "the token leaked into the error");
  free(reply);

  FILE *f = fopen(dest, "rb");
  CHECK(f, "%s was not written", dest);
  char *got = xmalloc(SIZE + 1);
  size_t n = fread(got, 1, SIZE + 1, f);
  fclose(f);
  CHECK(n == SIZE && fake_fnv1a64(got, n) == sum,
        "the downloaded file differs (%zu bytes)", n);
  free(got);
  struct stat st;
  struct buf part = BUF_INIT;
  buf_printf(&part, "%s.part", dest);
  CHECK(stat(part.data, &st) != 0, "%s was left behind", part.data);
  buf_reset(&part);
  buf_printf(&part, "%s.part", missing);
  CHECK(stat(missing, &st) != 0 && stat(part.data, &st) != 0,
        "a failed download left a file behind");
  buf_free(&part);
  long growth = after - before;
  fprintf(stderr, "download: 20 MiB; peak RSS +%ld KiB\n", growth);
  CHECK(before > 0 && growth < 16 * 1024,
        "peak RSS grew by %ld KiB during a 20 MiB download", growth);
  proc_stop_cleanly(p);
}

/* --- transport ---------------------------------------------------------- */

static pid_t h2_pid;

static void stop_h2_server(void) {
  if (h2_pid > 0) {
    kill(h2_pid, SIGTERM);
    waitpid(h2_pid, NULL, 0);
    h2_pid = 0;
  }
}

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sin = {0};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sin;
  CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0 &&
            getsockname(fd, (struct sockaddr *)&sin, &len) == 0,
        "cannot find a free port");
  close(fd);
  return ntohs(sin.sin_port);
}

static bool port_open(void *ud) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sin = {0};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = htons((uint16_t)*(int *)ud);
  bool ok = connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0;
  close(fd);
  return ok;
}

/* Against an HTTP/2 server over TLS (nghttpd), 50 requests at once share
 * one connection; the peer is verified (a self-signed certificate is
 * refused unless SSL_CERT_FILE trusts it). */
TEST(http2_multiplex) {
  harness_api();
  if (access("/usr/sbin/nghttpd", X_OK) != 0 ||
      system("command -v openssl >/dev/null 2>&1") != 0) {
    fprintf(stderr, "SKIP: needs nghttpd (Debian's nghttp2-server) and "
            "openssl\n");
    exit(77);
  }
  const char *key = track_big_file("h2key.pem");
  const char *cert = track_big_file("h2cert.pem");
  const char *log = track_big_file("nghttpd.log");
  harness_write("f.txt", "hello over h2\n");
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s "
           "-days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
           ">/dev/null 2>&1", key, cert);
  CHECK(system(cmd) == 0, "openssl could not make a certificate");
  int port = free_port();
  atexit(stop_h2_server);
  h2_pid = fork();
  if (h2_pid == 0) {
    FILE *out = freopen(log, "w", stdout);
    (void)out;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    execl("/usr/sbin/nghttpd", "nghttpd", "-v", "-d", harness_tmpdir(),
          portstr, key, cert, (char *)NULL);
    _exit(127);
  }
  CHECK(run_until(port_open, &port, 10000), "nghttpd did not start");
  struct buf text = BUF_INIT;
  buf_printf(&text,
      "local n = tonumber(os.getenv('REQUESTS'))\n"
      "local list = {}\n"
      "for i = 1, n do\n"
      "  list[i] = function()\n"
      "    local r, e = tghost.http.get('https://127.0.0.1:%d/f.txt')\n"
      "    return r and (r.status .. ' ' .. r.body) or ('error ' .. e)\n"
      "  end\n"
      "end\n"
      "local res = tghost.all(list)\n"
      "for i = 1, n do io.write(res[i]) end\n", port);
  const char *script = harness_write("h2.lua", text.data);
  buf_free(&text);

  static char ca_env[600];
  snprintf(ca_env, sizeof ca_env, "SSL_CERT_FILE=%s", cert);
  const char *const env[] = {"BOT_TOKEN=" TEST_TOKEN, ca_env, "REQUESTS=50",
                              NULL};
  struct proc *p = proc_start_env(script, NULL, env, true);
  CHECK(proc_wait(p, 30000), "the HTTP/2 script did not finish");
  CHECK(proc_status(p) == 0, "exit status %d", proc_status(p));
  const char *out = proc_stdout(p);
  int ok = 0;
  for (const char *q = out; (q = strstr(q, "200 hello over h2")); q++) ok++;
  CHECK(ok == 50, "%d of 50 requests succeeded: %.300s", ok, out);
  proc_check_clean(p);

  /* nghttpd -v numbers its sessions ([id=N]); count those that carried
   * requests (the start-up probe above opened one that did not). */
  FILE *f = fopen(log, "r");
  CHECK(f, "no nghttpd log");
  int sessions = 0, h2_frames = 0;
  bool seen[64] = {false};
  char line[1024];
  while (fgets(line, sizeof line, f)) {
    int id;
    const char *at = strstr(line, "[id=");
    if (!strstr(line, "recv HEADERS frame") || !at ||
        sscanf(at, "[id=%d]", &id) != 1)
      continue;
    h2_frames++;
    if (id >= 0 && id < 64 && !seen[id]) {
      seen[id] = true;
      sessions++;
    }
  }
  fclose(f);
  fprintf(stderr, "http2: 50 requests over %d connection(s), %d HTTP/2 "
          "requests\n", sessions, h2_frames);
  CHECK(sessions == 1, "50 requests used %d connections", sessions);
  CHECK(h2_frames == 50, "%d HTTP/2 requests, not 50", h2_frames);

  /* Without trusting the certificate the peer is refused. Five requests:
   * each waits for the one before it to fail its handshake (they would
   * share its connection), so 50 took 5 s, and 30 s under ASan. */
  const char *const env2[] = {"BOT_TOKEN=" TEST_TOKEN, "REQUESTS=5", NULL};
  p = proc_start_env(script, NULL, env2, true);
  CHECK(proc_wait(p, 30000), "the second script did not finish");
  CHECK(strstr(proc_stdout(p), "error SSL certificate problem"),
        "a self-signed certificate was accepted: %.300s", proc_stdout(p));
  proc_check_clean(p);
  stop_h2_server();
}

/* The long poll has a connection pool of its own: no method call ever
 * travels on a connection that carried a getUpdates. */
TEST(poll_pool) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("pool.lua",
      "bot.on('message', function(ctx)\n"
      "  ctx:reply('a ' .. ctx.msg.text)\n"
      "  bot.api.getChat{ chat_id = ctx.chat.id }\n"
      "end)\n"
      "run(bot)\n");
  struct proc *p = proc_start(script, NULL);
  wait_polling();
  enum { ROUNDS = 20, PER_ROUND = 20 };
  for (int r = 0; r < ROUNDS; r++) {
    for (int i = 0; i < PER_ROUND; i++) {
      char text[16];
      snprintf(text, sizeof text, "%d", r * PER_ROUND + i);
      fakeapi_push_text(api, 100 + i, 1, text);
    }
    wait_calls("getChat", (size_t)(r + 1) * PER_ROUND, 10000);
  }
  size_t polls = fakeapi_poll_count(api), shared = 0;
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "getMe") == 0) continue;   /* the source's own */
    for (size_t j = 0; j < polls; j++)
      if (fakeapi_poll(api, j)->connection == c->connection) {
        shared++;
        break;
      }
  }
  fprintf(stderr, "poll_pool: %zu polls, %zu method calls, %zu on a poll "
          "connection\n", polls, fakeapi_call_count(api), shared);
  CHECK(polls >= ROUNDS, "only %zu polls", polls);
  CHECK(shared == 0, "%zu method calls used a long-poll connection", shared);
  proc_stop_cleanly(p);
}
