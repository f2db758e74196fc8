/* Child processes end to end: tghost.exec and tghost.exec.start from
 * scripts and handlers; output streamed, stdin written, timeouts, the
 * token kept out of the child's environment, children killed when their
 * handler is cancelled, and no zombie left after a thousand runs. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static bool have_poll(void *ud) {
  return fakeapi_poll_count(harness_api()) >= 1;
}

static void wait_polling(void) {
  CHECK(run_until(have_poll, NULL, 15000), "tghost never polled");
}

/* The processes whose parent is pid, and how many of them are zombies. */
static int children_of(int pid, int *zombies) {
  DIR *d = opendir("/proc");
  int n = 0;
  *zombies = 0;
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    char path[300], line[512];
    snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    if (fgets(line, sizeof line, f)) {
      /* pid (comm) state ppid: comm may hold spaces, so from the last ')'. */
      char *close = strrchr(line, ')');
      char state = 0;
      int ppid = 0;
      if (close && sscanf(close + 1, " %c %d", &state, &ppid) == 2 &&
          ppid == pid) {
        n++;
        if (state == 'Z') (*zombies)++;
      }
    }
    fclose(f);
  }
  if (d) closedir(d);
  return n;
}

struct kids {
  int pid;
  int left;
};

static bool no_children(void *ud) {
  struct kids *k = ud;
  int zombies;
  k->left = children_of(k->pid, &zombies);
  return k->left == 0;
}

/* tghost.exec's contract, from a script that runs at the top level. */
TEST(exec_contract) {
  harness_api();
  const char *script = harness_write("exec.lua",
      "local exec = tghost.exec\n"
      "local r = assert(exec{ 'echo', 'hello', 'world' })\n"
      "assert(r.status == 0 and r.signal == nil, 'status')\n"
      "assert(r.stdout == 'hello world\\n' and r.stderr == '', r.stdout)\n"
      "-- no shell: metacharacters are plain arguments\n"
      "r = assert(exec{ 'echo', '$HOME', '; rm -rf /', '`id`' })\n"
      "assert(r.stdout == '$HOME ; rm -rf / `id`\\n', r.stdout)\n"
      "r = assert(exec{ 'sh', '-c', 'echo out; echo err >&2; exit 3' })\n"
      "assert(r.status == 3 and r.stdout == 'out\\n' and r.stderr == 'err\\n')\n"
      "-- stdin: a string, or a function's pieces\n"
      "r = assert(exec{ 'cat', stdin = 'from stdin' })\n"
      "assert(r.stdout == 'from stdin', r.stdout)\n"
      "local i = 0\n"
      "r = assert(exec{ 'wc', '-c', stdin = function()\n"
      "  i = i + 1\n"
      "  if i <= 300 then return string.rep('x', 1000) end\n"
      "end })\n"
      "assert(tonumber(r.stdout) == 300000, r.stdout)\n"
      "-- a big output passes through the 64 KiB window\n"
      "r = assert(exec{ 'head', '-c', '3000000', '/dev/zero' })\n"
      "assert(#r.stdout == 3000000)\n"
      "-- output to functions as it comes\n"
      "local pieces = {}\n"
      "r = assert(exec{ 'sh', '-c', 'echo a; sleep 0.1; echo b',\n"
      "                 stdout = function(c) pieces[#pieces + 1] = c end })\n"
      "assert(r.stdout == nil and table.concat(pieces) == 'a\\nb\\n', #pieces)\n"
      "-- failures: nil, message\n"
      "local t0 = tghost.now()\n"
      "local res, err = exec{ 'sleep', '5', timeout = 0.3 }\n"
      "assert(res == nil and err:find('timed out after 0.3 s'), err)\n"
      "assert(tghost.now() - t0 < 2, 'the timeout was not kept')\n"
      "res, err = exec{ 'no-such-program-xyz' }\n"
      "assert(res == nil and err:find('No such file'), err)\n"
      "res, err = exec{ 'yes', max_output = 100000 }\n"
      "assert(res == nil and err:find('max_output'), err)\n"
      "-- a signal\n"
      "r = assert(exec{ 'sh', '-c', 'kill -9 $$' })\n"
      "assert(r.status == nil and r.signal == 'SIGKILL', tostring(r.signal))\n"
      "-- the environment: no token, a variable that holds it neither\n"
      "r = assert(exec{ 'env', env = { EXTRA = 'yes', HOME = false } })\n"
      "assert(not r.stdout:find('BOT_TOKEN'), 'BOT_TOKEN reached the child')\n"
      "assert(not r.stdout:find('TEST%-secret'), 'the token reached the child')\n"
      "assert(r.stdout:find('EXTRA=yes'), 'env addition missing')\n"
      "assert(not r.stdout:find('\\nHOME='), 'env removal ignored')\n"
      "assert(r.stdout:find('KEEP_ME=1'), 'the environment was not passed')\n"
      "r = assert(exec{ 'pwd', cwd = '/tmp' })\n"
      "assert(r.stdout == '/tmp\\n', r.stdout)\n"
      "-- a missing directory is named, not the program\n"
      "res, err = exec{ 'pwd', cwd = '/no-such-dir-xyz' }\n"
      "assert(res == nil and err:find('in /no-such-dir-xyz', 1, true), err)\n"
      "-- a running process: read as it writes, write, kill\n"
      "local p = assert(exec.start{ 'sh', '-c', 'echo 1; sleep 0.2; echo 2 >&2' })\n"
      "assert(type(p.pid) == 'number')\n"
      "local got = {}\n"
      "t0 = tghost.now()\n"
      "for chunk, stream in p:chunks() do got[#got + 1] = stream .. ':' .. chunk end\n"
      "assert(table.concat(got) == 'stdout:1\\nstderr:2\\n', table.concat(got))\n"
      "assert(tghost.now() - t0 > 0.15, 'not streamed')\n"
      "assert(p:wait().status == 0)\n"
      "p = assert(exec.start{ 'cat', stdin = true })\n"
      "assert(p:write(string.rep('y', 200000)))\n"
      "p:closeStdin()\n"
      "local n = 0\n"
      "for chunk in p:chunks() do n = n + #chunk end\n"
      "assert(n == 200000, n)\n"
      "p = assert(exec.start{ 'sleep', '10' })\n"
      "p:kill('SIGINT')\n"
      "r = p:wait()\n"
      "assert(r.signal == 'SIGINT', tostring(r.signal))\n"
      "-- misuse raises\n"
      "assert(not pcall(exec, 'ls -l'))\n"
      "assert(not pcall(exec, {}))\n"
      "assert(not pcall(exec, { 'ls', bogus = 1 }))\n"
      "assert(not pcall(exec, { 'ls', timeout = -1 }))\n"
      "assert(not pcall(exec, { 'ls', stdin = 5 }))\n"
      "assert(not pcall(exec, { 'ls', env = { A = {} } }))\n"
      "print('ALL OK')\n");
  const char *const env[] = {"BOT_TOKEN=" TEST_TOKEN,
                             "LEAKY_COPY=" TEST_TOKEN, "KEEP_ME=1", NULL};
  struct proc *p = proc_start_env(script, NULL, env, true);
  CHECK(proc_wait(p, 60000), "the script did not finish");
  CHECK(proc_status(p) == 0, "exit status %d", proc_status(p));
  CHECK(strstr(proc_stdout(p), "ALL OK"), "the script did not finish its "
        "checks");
  int zombies;
  (void)children_of(proc_pid(p), &zombies);
  proc_check_clean(p);
}

/* Under --check no program runs: nil, message, and a note at the line. */
TEST(exec_check) {
  harness_api();
  const char *script = harness_write("bot.lua",
      "local r, err = tghost.exec{ 'touch', '/tmp/tghost-check-ran' }\n"
      "assert(r == nil and err:find('not run'), tostring(err))\n"
      "print('top level done')\n"
      "run(bot)\n");
  unlink("/tmp/tghost-check-ran");
  struct proc *p = proc_start(script, (const char *[]){"--check", NULL});
  CHECK(proc_wait(p, 10000), "no exit");
  CHECK(proc_status(p) == 0, "exit status %d", proc_status(p));
  CHECK(strstr(proc_stdout(p), "top level done"), "the top level did not finish");
  CHECK(strstr(proc_stderr(p), "bot.lua:1: --check: tghost.exec did not run "
                               "touch"), "no note at the script's line");
  CHECK(access("/tmp/tghost-check-ran", F_OK) != 0, "--check ran a program");
  proc_check_clean(p);
}

static size_t cancelled_wanted;

static bool all_cancelled(void *ud) {
  return count_in(proc_stderr(ud), "timed out after 1000 ms") >= cancelled_wanted;
}

static size_t replies_with(const char *prefix) {
  /* Replies whose text starts with prefix. */
  struct fakeapi *api = harness_api();
  size_t n = 0;
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    char *t = fake_call_string(fakeapi_call(api, i), "text");
    if (t && strncmp(t, prefix, strlen(prefix)) == 0) n++;
    free(t);
  }
  return n;
}

static int pids_alive(const char *path, int *started) {
  FILE *f = fopen(path, "r");
  int alive = 0, n = 0, pid;
  while (f && fscanf(f, "%d", &pid) == 1) {
    n++;
    if (kill(pid, 0) == 0 || errno != ESRCH) alive++;
  }
  if (f) fclose(f);
  *started = n;
  return alive;
}

/* A thousand handlers each start a child that would run for a minute and
 * are cancelled by their timeout: every child is killed and reaped, none
 * is left, none a zombie. One that ignores SIGTERM gets SIGKILL after the
 * grace period. */
TEST_SERIAL(exec_cancel_kills) {
  struct fakeapi *api = harness_api();
  enum { N = 1000 };
  struct buf pids = BUF_INIT;
  buf_printf(&pids, "%s/pids", harness_tmpdir());
  struct buf text = BUF_INIT;
  buf_printf(&text,
      "bot.on('message', function(ctx)\n"
      "  if ctx.msg.text == 'stubborn' then\n"
      "    local p = assert(tghost.exec.start{ 'sh', '-c', 'trap \"\" TERM; echo up; sleep 60' })\n"
      "    p:read()\n"
      "    ctx:reply('stubborn ' .. p.pid)\n"
      "  else\n"
      "    -- the shell records its pid, then becomes sleep (same pid)\n"
      "    assert(tghost.exec.start{ 'sh', '-c', 'echo $$ >> %s; exec sleep 60' })\n"
      "  end\n"
      "  tghost.sleep(60)\n"
      "end)\n"
      "run(bot, { sink = { concurrency = 250, timeout = { milliseconds = 1000 } } })\n",
      pids.data);
  const char *script = harness_write("kids.lua", text.data);
  buf_free(&text);
  struct proc *p = proc_start(script, NULL);
  wait_polling();
  uint64_t t0 = harness_now_ms();
  for (int i = 0; i < N; i++) fakeapi_push_text(api, 100 + i % 50, 1, "hang");
  /* Every handler ends by its timeout. */
  cancelled_wanted = N;
  CHECK(run_until(all_cancelled, p, 120000), "only %zu of %d handlers were "
        "cancelled", count_in(proc_stderr(p), "timed out after 1000 ms"), N);
  struct kids k = {proc_pid(p), 0};
  CHECK(run_until(no_children, &k, 20000), "%d children of tghost are left",
        k.left);
  double took = (harness_now_ms() - t0) / 1000.0;
  int started;
  int alive = pids_alive(pids.data, &started);
  /* A child killed right after its spawn may not have written its pid. */
  CHECK(started >= N * 9 / 10, "only %d of %d children started", started, N);
  CHECK(alive == 0, "%d of the children still run", alive);
  fprintf(stderr, "exec: %d handlers cancelled, their %d children killed and "
          "reaped in %.1f s\n", N, started, took);
  buf_free(&pids);

  /* SIGTERM ignored: SIGKILL after the grace period. */
  size_t before = fakeapi_count_method(api, "sendMessage");
  fakeapi_push_text(api, 7, 7, "stubborn");
  wait_calls("sendMessage", before + 1, 20000);
  uint64_t t1 = harness_now_ms();
  int zombies;
  CHECK(children_of(proc_pid(p), &zombies) == 1, "the stubborn child is not "
        "running");
  CHECK(run_until(no_children, &k, 10000), "a child that ignores SIGTERM "
        "survived");
  double gone = (harness_now_ms() - t1) / 1000.0;
  fprintf(stderr, "exec: the stubborn child was gone %.2f s after its "
          "reply (timeout 1 s, then SIGTERM, SIGKILL 1 s later)\n", gone);
  CHECK(gone > 1.5, "the child went before its handler's timeout and the "
        "grace period (%.2f s)", gone);
  CHECK(children_of(proc_pid(p), &zombies) == 0 && zombies == 0, "zombies");
  proc_stop_cleanly(p);
}

/* A thousand programs run to their end from fifty handlers at once: each
 * answered, and nothing left behind. */
TEST_SERIAL(exec_thousand_runs) {
  struct fakeapi *api = harness_api();
  enum { UPDATES = 100, EACH = 10 };
  const char *script = harness_write("runs.lua",
      "bot.on('message', function(ctx)\n"
      "  local ok = 0\n"
      "  for i = 1, 10 do\n"
      "    local r = assert(tghost.exec{ 'sh', '-c', 'echo $0', tostring(i) })\n"
      "    if r.status == 0 and r.stdout == i .. '\\n' then ok = ok + 1 end\n"
      "  end\n"
      "  ctx:reply('ran ' .. ok)\n"
      "end)\n"
      "run(bot, { sink = { concurrency = 50 } })\n");
  struct proc *p = proc_start(script, NULL);
  wait_polling();
  uint64_t t0 = harness_now_ms();
  for (int i = 0; i < UPDATES; i++) fakeapi_push_text(api, 100 + i, 1, "run");
  wait_calls("sendMessage", UPDATES, 120000);
  double took = (harness_now_ms() - t0) / 1000.0;
  CHECK(replies_with("ran 10") == UPDATES, "%zu of %d handlers saw all ten "
        "runs succeed", replies_with("ran 10"), UPDATES);
  int zombies;
  struct kids k = {proc_pid(p), 0};
  CHECK(run_until(no_children, &k, 5000), "%d children left", k.left);
  CHECK(children_of(proc_pid(p), &zombies) == 0 && zombies == 0, "zombies");
  fprintf(stderr, "exec: %d runs in %.1f s (%.2f ms each)\n",
          UPDATES * EACH, took, took * 1000 / (UPDATES * EACH));
  proc_stop_cleanly(p);
}
