/* The core's layer check: reads the `#include "..."` lines of src/ and
 * fails when modules include each other in a circle, or when a module
 * includes one from a layer above its own. A module is a .c file with its
 * .h (task.c + task.h = "task"); the layers, bottom first, are listed
 * below. A new module must be given its layer here, so adding one is a
 * decision, not an accident.
 *
 *   layer_check SRC_DIR               check the tree; exit 1 on a problem
 *   layer_check --self-test SRC_DIR   copy the tree, plant a cycle, an
 *                                     upward include and an unlisted
 *                                     module, and check each is caught */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bottom first. A module may include modules of its own layer (if that
 * makes no circle) and of the layers below. */
#define LAYER_WIDTH 16   /* a layer's name and its modules */
static const char *const layers[][LAYER_WIDTH] = {
    {"base", "buf", "log", "clock", "qlist", "json", "embedded", "cli", "keyhash",
     "signals", "lpattern", "metrics", "netaddr"},
    {"loop and HTTP", "http", "looplag", "sandbox_world", "sandbox_script", "sandbox_api",
     "memstore", "kvreq", "sqlstore", "redisstore", "storages", "httpd",
     "metrics_http"},
    {"Bot API client", "botapi", "throttle", "apicall", "trace"},
    {"pipeline", "update", "inflight", "seqmap", "conversation", "source",
     "sink", "task", "runopts", "journal", "idwindow", "webhook"},
    {"runner", "runner"},
    {"host", "host"},
    {"Lua state", "luajson", "deps", "generation", "luabind", "storecodec"},
    {"Lua bindings", "luacore", "luarun", "luaapi", "luafile", "luahttp",
     "luaseq", "luaconv", "luatask", "luacoro", "luaguard", "luastorage",
     "luastring"},
    {"runtime", "runtime"},
    {"hot reload", "reload"},
    {"main", "main", "sandbox_chat"},
};
#define NLAYERS (sizeof layers / sizeof layers[0])

#define MAX_MODULES 128
#define MAX_EDGES 1024
#define NAME_MAX_LEN 64

struct edge {
  int from, to;
  char file[260];                /* where the include is written */
};

struct graph {
  char names[MAX_MODULES][NAME_MAX_LEN];
  int layer[MAX_MODULES];        /* -1: not listed */
  int n;
  struct edge edges[MAX_EDGES];
  int nedges;
  int problems;
  char report[8192];             /* what was found, for the self-test */
};

static void problem(struct graph *g, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  fprintf(stderr, "layer check: %s\n", line);
  size_t used = strlen(g->report);
  snprintf(g->report + used, sizeof g->report - used, "%s\n", line);
  g->problems++;
}

static int layer_of(const char *module) {
  for (size_t l = 0; l < NLAYERS; l++)
    for (int i = 1; i < LAYER_WIDTH && layers[l][i]; i++)
      if (strcmp(layers[l][i], module) == 0) return (int)l;
  return -1;
}

static int module_index(struct graph *g, const char *name) {
  for (int i = 0; i < g->n; i++)
    if (strcmp(g->names[i], name) == 0) return i;
  if (g->n == MAX_MODULES) {
    fprintf(stderr, "layer check: too many modules\n");
    exit(2);
  }
  snprintf(g->names[g->n], NAME_MAX_LEN, "%s", name);
  g->layer[g->n] = layer_of(name);
  return g->n++;
}

/* "task.c" -> "task"; NULL for files that are not C sources. */
static bool module_of_file(const char *file, char *out) {
  const char *dot = strrchr(file, '.');
  if (!dot || (strcmp(dot, ".c") != 0 && strcmp(dot, ".h") != 0)) return false;
  size_t len = (size_t)(dot - file);
  if (len == 0 || len >= NAME_MAX_LEN) return false;
  memcpy(out, file, len);
  out[len] = '\0';
  return true;
}

static void read_includes(struct graph *g, const char *dir, const char *file) {
  char module[NAME_MAX_LEN];
  if (!module_of_file(file, module)) return;
  int from = module_index(g, module);
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "layer check: cannot read %s: %s\n", path,
            strerror(errno));
    exit(2);
  }
  char line[1024];
  while (fgets(line, sizeof line, f)) {
    const char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (*p++ != '#') continue;
    while (*p == ' ' || *p == '\t') p++;
    if (strncmp(p, "include", 7) != 0) continue;
    p += 7;
    while (*p == ' ' || *p == '\t') p++;
    if (*p++ != '"') continue;   /* <system> headers do not count */
    const char *end = strchr(p, '"');
    if (!end) continue;
    char target[NAME_MAX_LEN + 3];
    snprintf(target, sizeof target, "%.*s", (int)(end - p), p);
    char to_module[NAME_MAX_LEN];
    if (strchr(target, '/') || !module_of_file(target, to_module)) continue;
    int to = module_index(g, to_module);
    if (to == from) continue;
    if (g->nedges == MAX_EDGES) {
      fprintf(stderr, "layer check: too many includes\n");
      exit(2);
    }
    struct edge *e = &g->edges[g->nedges++];
    e->from = from;
    e->to = to;
    snprintf(e->file, sizeof e->file, "%s", file);
  }
  fclose(f);
}

/* Depth-first search for a circle; prints the first one found from each
 * module not yet explored. */
static bool find_cycle(struct graph *g, int at, int *state, int *stack,
                       int depth) {
  state[at] = 1;
  stack[depth] = at;
  for (int i = 0; i < g->nedges; i++) {
    if (g->edges[i].from != at) continue;
    int to = g->edges[i].to;
    if (state[to] == 1) {
      char path[1024] = "";
      int start = 0;
      while (stack[start] != to) start++;
      for (int k = start; k <= depth; k++) {
        size_t used = strlen(path);
        snprintf(path + used, sizeof path - used, "%s -> ", g->names[stack[k]]);
      }
      size_t used = strlen(path);
      snprintf(path + used, sizeof path - used, "%s", g->names[to]);
      problem(g, "modules include each other in a circle: %s", path);
      state[at] = 2;
      return true;
    }
    if (state[to] == 0 && find_cycle(g, to, state, stack, depth + 1)) {
      state[at] = 2;
      return true;
    }
  }
  state[at] = 2;
  return false;
}

static int check_tree(const char *dir, struct graph *g) {
  memset(g, 0, sizeof *g);
  DIR *d = opendir(dir);
  if (!d) {
    fprintf(stderr, "layer check: cannot open %s: %s\n", dir, strerror(errno));
    exit(2);
  }
  struct dirent *ent;
  while ((ent = readdir(d))) read_includes(g, dir, ent->d_name);
  closedir(d);

  for (int i = 0; i < g->n; i++)
    if (g->layer[i] < 0)
      problem(g, "module %s has no layer: add it to the list in "
              "tests/layer_check.c", g->names[i]);
  for (int i = 0; i < g->nedges; i++) {
    const struct edge *e = &g->edges[i];
    int lf = g->layer[e->from], lt = g->layer[e->to];
    if (lf >= 0 && lt > lf)
      problem(g, "%s includes %s.h: module %s (layer \"%s\") reaches up to "
              "%s (layer \"%s\")", e->file, g->names[e->to],
              g->names[e->from], layers[lf][0], g->names[e->to],
              layers[lt][0]);
  }
  int state[MAX_MODULES] = {0}, stack[MAX_MODULES];
  for (int i = 0; i < g->n; i++)
    if (state[i] == 0) find_cycle(g, i, state, stack, 0);
  return g->problems;
}

/* --- the self-test ------------------------------------------------------ */

static void copy_file(const char *from, const char *to) {
  FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
  if (!in || !out) {
    fprintf(stderr, "layer check: cannot copy %s: %s\n", from,
            strerror(errno));
    exit(2);
  }
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
  fclose(in);
  fclose(out);
}

static void copy_tree(const char *from, const char *to) {
  DIR *d = opendir(from);
  if (!d) exit(2);
  struct dirent *ent;
  while ((ent = readdir(d))) {
    char module[NAME_MAX_LEN];
    if (!module_of_file(ent->d_name, module)) continue;
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s/%s", from, ent->d_name);
    snprintf(b, sizeof b, "%s/%s", to, ent->d_name);
    copy_file(a, b);
  }
  closedir(d);
}

static void append_line(const char *dir, const char *file, const char *line) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  FILE *f = fopen(path, "a");
  if (!f) exit(2);
  fprintf(f, "%s\n", line);
  fclose(f);
}

static void remove_tree(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *ent;
  while ((ent = readdir(d))) {
    if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
      continue;
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, ent->d_name);
    unlink(p);
  }
  closedir(d);
  rmdir(dir);
}

static int failures;

static void expect(bool ok, const char *what) {
  fprintf(stderr, "self-test: %s: %s\n", what, ok ? "caught" : "MISSED");
  if (!ok) failures++;
}

/* Each plant is made in a fresh copy of the tree. */
static void plant(const char *src, const char *file, const char *line,
                  const char *must_report, const char *what) {
  char dir[] = "/tmp/tghost-layers-XXXXXX";
  if (!mkdtemp(dir)) exit(2);
  copy_tree(src, dir);
  struct graph g;
  if (line) append_line(dir, file, line);
  else append_line(dir, file, "/* an unlisted module */");
  fprintf(stderr, "self-test: planting %s\n", what);
  int n = check_tree(dir, &g);
  expect(n > 0 && strstr(g.report, must_report) != NULL, what);
  remove_tree(dir);
}

static int self_test(const char *src) {
  char dir[] = "/tmp/tghost-layers-XXXXXX";
  if (!mkdtemp(dir)) exit(2);
  copy_tree(src, dir);
  struct graph g;
  int n = check_tree(dir, &g);
  fprintf(stderr, "self-test: the untouched copy has %d problem(s)\n", n);
  if (n != 0) failures++;
  remove_tree(dir);

  /* inflight and sink share a layer; sink includes inflight already. */
  plant(src, "inflight.c", "#include \"sink.h\"", "circle: ",
        "a circle inside one layer (inflight -> sink -> inflight)");
  /* The task layer reaching up to the generation (as it once did). */
  plant(src, "task.c", "#include \"generation.h\"", "task.c includes generation.h",
        "an upward include (task -> generation)");
  plant(src, "newmodule.c", NULL, "module newmodule has no layer",
        "a module missing from the layer list");
  fprintf(stderr, "self-test: %s\n", failures ? "FAILED" : "every plant caught");
  return failures ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--self-test") == 0)
    return self_test(argv[2]);
  if (argc != 2) {
    fprintf(stderr, "usage: layer_check [--self-test] SRC_DIR\n");
    return 2;
  }
  struct graph g;
  int n = check_tree(argv[1], &g);
  if (n) {
    fprintf(stderr, "layer check: %d problem(s); the layers, bottom first:\n",
            n);
    for (size_t l = 0; l < NLAYERS; l++) {
      fprintf(stderr, "  %-16s", layers[l][0]);
      for (int i = 1; i < LAYER_WIDTH && layers[l][i]; i++)
        fprintf(stderr, " %s", layers[l][i]);
      fprintf(stderr, "\n");
    }
    return 1;
  }
  printf("layer check: %d modules, %d includes, no circle, nothing reaches "
         "up\n", g.n, g.nedges);
  return 0;
}
