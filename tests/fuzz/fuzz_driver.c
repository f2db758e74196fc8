/* Runs a libFuzzer target without libFuzzer (and without clang): every
 * file of a seed corpus, then random mutations of them for a few seconds.
 * What ctest runs, so every build exercises the fuzz target; long runs
 * with coverage guidance are libFuzzer's job (docs/internals/tests.md).
 *
 *   fuzz_driver [--seconds S] [--seed N] CORPUS_DIR_OR_FILE...
 *
 * A finding aborts inside the target; the driver has written the input
 * that did it to fuzz-finding.bin (in the working directory) first, and
 * printed its seed, so `fuzz_driver fuzz-finding.bin` replays it. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INPUT_MAX (64 * 1024)

struct input {
  uint8_t *data;
  size_t len;
};

static struct input *corpus;
static size_t ncorpus, corpus_cap;

/* The input being run, for the SIGABRT handler. */
static const uint8_t *volatile running;
static volatile size_t running_len;

static void on_abort(int sig) {
  int fd = open("fuzz-finding.bin", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    ssize_t w = write(fd, running, running_len);
    (void)w;
    close(fd);
  }
  static const char msg[] =
      "fuzz_driver: the input is in fuzz-finding.bin (replay: fuzz_driver "
      "fuzz-finding.bin)\n";
  ssize_t w = write(2, msg, sizeof msg - 1);
  (void)w;
  signal(sig, SIG_DFL);
  raise(sig);
}

static void run(const uint8_t *data, size_t len) {
  running = data;
  running_len = len;
  LLVMFuzzerTestOneInput(data, len);
}

static void add_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    exit(2);
  }
  uint8_t *data = malloc(INPUT_MAX);
  size_t len = fread(data, 1, INPUT_MAX, f);
  fclose(f);
  if (ncorpus == corpus_cap) {
    corpus_cap = corpus_cap ? corpus_cap * 2 : 64;
    corpus = realloc(corpus, corpus_cap * sizeof *corpus);
  }
  corpus[ncorpus].data = data;
  corpus[ncorpus].len = len;
  ncorpus++;
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void add_path(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) {
    perror(path);
    exit(2);
  }
  if (!S_ISDIR(st.st_mode)) {
    add_file(path);
    return;
  }
  DIR *d = opendir(path);
  if (!d) {
    perror(path);
    exit(2);
  }
  char **names = NULL;
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    names = realloc(names, (n + 1) * sizeof *names);
    size_t len = strlen(path) + strlen(e->d_name) + 2;
    names[n] = malloc(len);
    snprintf(names[n], len, "%s/%s", path, e->d_name);
    n++;
  }
  closedir(d);
  qsort(names, n, sizeof *names, by_name);   /* the same order every run */
  for (size_t i = 0; i < n; i++) {
    add_file(names[i]);
    free(names[i]);
  }
  free(names);
}

/* --- mutations ---------------------------------------------------------- */

static uint64_t rng;
static uint64_t rnd(void) {
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * 0x2545f4914f6cdd1dULL;
}
static size_t below(size_t n) { return n ? (size_t)(rnd() % n) : 0; }

/* Pieces that matter to a JSON reader. */
static const char *const tokens[] = {
    "{", "}", "[", "]", "\"", ":", ",", " ", "\t", "\n", "\\", "\\u",
    "\\ud83d\\ude00", "\\ud800", "\\udc00", "\\u0000", "\\u00e9", "\\n",
    "\\\"", "\\/", "true", "false", "null", "0", "-0", "1.", "-.5", "2.e3",
    "1e400", "-1e-400", "0.1", "1E+2", "01", "9007199254740993",
    "9223372036854775807", "9223372036854775808", "-9223372036854775808",
    "-9223372036854775809", "123456789012345678901234567890", "\x01", "\x1f",
    "\x7f", "\xc3\xa9", "\xff", "\"update_id\":", "\"ok\":true,",
    "\"result\":[", "\"message\":{", "\"text\":\"", "\"a\":null",
};

static size_t mutate(uint8_t *buf, size_t len, size_t cap) {
  int rounds = 1 + (int)below(4);
  for (int r = 0; r < rounds; r++) {
    switch (below(8)) {
      case 0:                                         /* flip a bit */
        if (len) buf[below(len)] ^= (uint8_t)(1u << below(8));
        break;
      case 1:                                         /* set a byte */
        if (len) buf[below(len)] = (uint8_t)"{}[]\":,-.0123456789eE\\u \t\n"
                                             "\0\x1f\xff"[below(30)];
        break;
      case 2:
      case 3: {                                       /* insert a token */
        const char *t = tokens[below(sizeof tokens / sizeof tokens[0])];
        size_t tl = strlen(t), at = below(len + 1);
        if (len + tl > cap) break;
        memmove(buf + at + tl, buf + at, len - at);
        memcpy(buf + at, t, tl);
        len += tl;
        break;
      }
      case 4: {                                       /* delete a range */
        if (!len) break;
        size_t at = below(len), n = 1 + below(len - at < 16 ? len - at : 16);
        memmove(buf + at, buf + at + n, len - at - n);
        len -= n;
        break;
      }
      case 5: {                                       /* duplicate a range */
        if (!len) break;
        size_t at = below(len), n = 1 + below(len - at);
        if (len + n > cap) break;
        size_t to = below(len + 1);
        uint8_t *copy = malloc(n);
        memcpy(copy, buf + at, n);
        memmove(buf + to + n, buf + to, len - to);
        memcpy(buf + to, copy, n);
        free(copy);
        len += n;
        break;
      }
      case 6: {                                       /* splice another */
        const struct input *o = &corpus[below(ncorpus)];
        if (!o->len) break;
        size_t from = below(o->len), n = 1 + below(o->len - from);
        size_t at = below(len + 1);
        if (at + n > cap) n = cap - at;
        memcpy(buf + at, o->data + from, n);
        if (at + n > len) len = at + n;
        break;
      }
      default:                                        /* truncate */
        if (len) len = below(len + 1);
        break;
    }
  }
  return len;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  double seconds = 3;
  uint64_t seed = 20261130;
  const char *env = getenv("TGHOST_FUZZ_SEED");
  if (env && *env) seed = strtoull(env, NULL, 10);
  int first = 1;
  for (; first < argc && strncmp(argv[first], "--", 2) == 0; first += 2) {
    if (first + 1 >= argc) break;
    if (strcmp(argv[first], "--seconds") == 0) seconds = atof(argv[first + 1]);
    else if (strcmp(argv[first], "--seed") == 0)
      seed = strtoull(argv[first + 1], NULL, 10);
    else break;
  }
  if (first >= argc) {
    fprintf(stderr, "usage: fuzz_driver [--seconds S] [--seed N] "
                    "CORPUS_DIR_OR_FILE...\n");
    return 2;
  }
  signal(SIGABRT, on_abort);
  for (int i = first; i < argc; i++) add_path(argv[i]);
  for (size_t i = 0; i < ncorpus; i++) run(corpus[i].data, corpus[i].len);
  printf("fuzz_driver: %zu corpus inputs pass\n", ncorpus);

  rng = seed ? seed : 1;
  uint8_t *buf = malloc(INPUT_MAX);
  unsigned long runs = 0;
  double end = now_s() + seconds;
  size_t len = 0;
  while (ncorpus && now_s() < end) {
    for (int batch = 0; batch < 64; batch++) {
      /* Mostly start afresh from a seed; sometimes keep mutating. */
      if (runs % 4 == 0 || len == 0) {
        const struct input *base = &corpus[below(ncorpus)];
        memcpy(buf, base->data, base->len);
        len = base->len;
      }
      len = mutate(buf, len, INPUT_MAX);
      run(buf, len);
      runs++;
    }
  }
  printf("fuzz_driver: seed %" PRIu64 ": %lu mutated inputs in %.1f s, no "
         "finding\n", seed, runs, seconds);
  free(buf);
  for (size_t i = 0; i < ncorpus; i++) free(corpus[i].data);
  free(corpus);
  return 0;
}
