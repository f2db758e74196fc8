/* The house rules, checked on every build (ctest `layers`):
 *
 *   - src/: the layers are the table in src/README.md (the block fenced
 *     as ```layers, one row "layer | folder | modules", bottom first).
 *     Every .c/.h under src/ must be a module the table names, in the
 *     folder its row gives; a module includes only modules of its own
 *     layer or of the layers below, by their folder ("pipeline/sink.h");
 *     and no modules include each other in a circle.
 *   - lua/: no `require` circle between the Lua modules, counting every
 *     require in a file (a late one inside a function closes a circle at
 *     run time just the same).
 *
 *   layer_check SRC_DIR LUA_DIR               check; exit 1 on a problem
 *   layer_check --self-test SRC_DIR LUA_DIR   copy both trees, plant each
 *                                             kind of fault, check each is
 *                                             caught */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_LAYERS 32
#define MAX_MODULES 256
#define MAX_EDGES 2048
#define NAME_LEN 64

struct layer {
  char name[NAME_LEN];
  char folder[NAME_LEN];
};

struct module {
  char name[NAME_LEN];
  int layer;                     /* -1: not in the table */
  char folder[NAME_LEN];         /* where the table puts it */
  bool on_disk;
};

struct edge {
  int from, to;
  char file[600];                /* where the include (require) is written */
};

struct graph {
  struct layer layers[MAX_LAYERS];
  int nlayers;
  struct module mods[MAX_MODULES];
  int n;
  struct edge edges[MAX_EDGES];
  int nedges;
  int problems;
  char report[16384];            /* what was found, for the self-test */
};

static void problem(struct graph *g, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void problem(struct graph *g, const char *fmt, ...) {
  char line[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  fprintf(stderr, "layer check: %s\n", line);
  size_t used = strlen(g->report);
  snprintf(g->report + used, sizeof g->report - used, "%s\n", line);
  g->problems++;
}

static void die(const char *fmt, const char *arg) {
  fprintf(stderr, "layer check: ");
  fprintf(stderr, fmt, arg, strerror(errno));
  fprintf(stderr, "\n");
  exit(2);
}

static int module_index(struct graph *g, const char *name) {
  for (int i = 0; i < g->n; i++)
    if (strcmp(g->mods[i].name, name) == 0) return i;
  if (g->n == MAX_MODULES) {
    fprintf(stderr, "layer check: too many modules\n");
    exit(2);
  }
  struct module *m = &g->mods[g->n];
  memset(m, 0, sizeof *m);
  snprintf(m->name, NAME_LEN, "%s", name);
  m->layer = -1;
  return g->n++;
}

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  size_t len = strlen(s);
  while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' ||
                 s[len - 1] == '\n' || s[len - 1] == '\r'))
    s[--len] = '\0';
  return s;
}

/* The ```layers block of SRC_DIR/README.md. */
static void read_table(struct graph *g, const char *src) {
  char path[4096];
  snprintf(path, sizeof path, "%s/README.md", src);
  FILE *f = fopen(path, "r");
  if (!f) die("cannot read %s: %s", path);
  char line[1024];
  bool inside = false, seen = false;
  while (fgets(line, sizeof line, f)) {
    if (!inside) {
      if (strncmp(line, "```layers", 9) == 0) inside = seen = true;
      continue;
    }
    if (strncmp(line, "```", 3) == 0) break;
    char *bar1 = strchr(line, '|');
    char *bar2 = bar1 ? strchr(bar1 + 1, '|') : NULL;
    if (!bar1 || !bar2) {
      problem(g, "src/README.md: a layers row without two '|': %s", trim(line));
      continue;
    }
    *bar1 = *bar2 = '\0';
    if (g->nlayers == MAX_LAYERS) {
      fprintf(stderr, "layer check: too many layers\n");
      exit(2);
    }
    struct layer *l = &g->layers[g->nlayers];
    snprintf(l->name, NAME_LEN, "%s", trim(line));
    snprintf(l->folder, NAME_LEN, "%s", trim(bar1 + 1));
    for (char *tok = strtok(bar2 + 1, " \t\r\n"); tok;
         tok = strtok(NULL, " \t\r\n")) {
      int i = module_index(g, tok);
      if (g->mods[i].layer >= 0)
        problem(g, "src/README.md: module %s is listed twice", tok);
      g->mods[i].layer = g->nlayers;
      memcpy(g->mods[i].folder, l->folder, NAME_LEN);
    }
    g->nlayers++;
  }
  fclose(f);
  if (!seen) problem(g, "src/README.md has no ```layers block");
}

/* "task.c" -> "task"; false for files that are not C sources. */
static bool module_of_file(const char *file, char *out) {
  const char *dot = strrchr(file, '.');
  if (!dot || (strcmp(dot, ".c") != 0 && strcmp(dot, ".h") != 0)) return false;
  size_t len = (size_t)(dot - file);
  if (len == 0 || len >= NAME_LEN) return false;
  memcpy(out, file, len);
  out[len] = '\0';
  return true;
}

static void add_edge(struct graph *g, int from, int to, const char *file) {
  if (from == to) return;
  if (g->nedges == MAX_EDGES) {
    fprintf(stderr, "layer check: too many includes\n");
    exit(2);
  }
  struct edge *e = &g->edges[g->nedges++];
  e->from = from;
  e->to = to;
  snprintf(e->file, sizeof e->file, "%s", file);
}

static void read_includes(struct graph *g, const char *src,
                          const char *folder, const char *file) {
  char module[NAME_LEN];
  if (!module_of_file(file, module)) return;
  int from = module_index(g, module);
  struct module *m = &g->mods[from];
  m->on_disk = true;
  char where[600];
  snprintf(where, sizeof where, "%s/%s", folder, file);
  if (m->layer < 0)
    problem(g, "module %s (src/%s) has no layer: add it to the table in "
            "src/README.md", module, where);
  else if (strcmp(m->folder, folder) != 0)
    problem(g, "module %s is in src/%s/ but src/README.md puts it in src/%s/",
            module, folder, m->folder);
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", src, where);
  FILE *f = fopen(path, "r");
  if (!f) die("cannot read %s: %s", path);
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
    char target[300];
    snprintf(target, sizeof target, "%.*s", (int)(end - p), p);
    const char *slash = strchr(target, '/');
    char to_module[NAME_LEN];
    if (!module_of_file(slash ? slash + 1 : target, to_module)) continue;
    int to = module_index(g, to_module);
    if (!slash) {
      problem(g, "src/%s includes \"%s\": name the folder (\"%s/%s\")", where,
              target, g->mods[to].layer >= 0 ? g->mods[to].folder : "?",
              target);
    } else if (g->mods[to].layer >= 0) {
      size_t flen = (size_t)(slash - target);
      if (flen != strlen(g->mods[to].folder) ||
          strncmp(target, g->mods[to].folder, flen) != 0)
        problem(g, "src/%s includes \"%s\", but %s is in src/%s/", where,
                target, to_module, g->mods[to].folder);
    }
    add_edge(g, from, to, where);
  }
  fclose(f);
}

/* Depth-first search for a circle; reports the first one found from each
 * module not yet explored. */
static bool find_cycle(struct graph *g, int at, int *state, int *stack,
                       int depth, const char *what) {
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
        snprintf(path + used, sizeof path - used, "%s -> ",
                 g->mods[stack[k]].name);
      }
      size_t used = strlen(path);
      snprintf(path + used, sizeof path - used, "%s", g->mods[to].name);
      problem(g, "%s in a circle: %s", what, path);
      state[at] = 2;
      return true;
    }
    if (state[to] == 0 && find_cycle(g, to, state, stack, depth + 1, what)) {
      state[at] = 2;
      return true;
    }
  }
  state[at] = 2;
  return false;
}

static void find_cycles(struct graph *g, const char *what) {
  int state[MAX_MODULES] = {0}, stack[MAX_MODULES];
  for (int i = 0; i < g->n; i++)
    if (state[i] == 0) find_cycle(g, i, state, stack, 0, what);
}

static int check_src(const char *src, struct graph *g) {
  memset(g, 0, sizeof *g);
  read_table(g, src);
  DIR *d = opendir(src);
  if (!d) die("cannot open %s: %s", src);
  struct dirent *ent;
  while ((ent = readdir(d))) {
    if (ent->d_name[0] == '.') continue;
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/%s", src, ent->d_name);
    struct stat st;
    if (stat(sub, &st) != 0) die("cannot stat %s: %s", sub);
    if (!S_ISDIR(st.st_mode)) {
      char module[NAME_LEN];
      if (module_of_file(ent->d_name, module))
        problem(g, "src/%s is outside every folder: move it into the folder "
                "of its layer (src/README.md)", ent->d_name);
      continue;
    }
    DIR *fd = opendir(sub);
    if (!fd) die("cannot open %s: %s", sub);
    struct dirent *fe;
    while ((fe = readdir(fd))) read_includes(g, src, ent->d_name, fe->d_name);
    closedir(fd);
  }
  closedir(d);

  for (int i = 0; i < g->n; i++)
    if (g->mods[i].layer >= 0 && !g->mods[i].on_disk)
      problem(g, "src/README.md lists module %s, which is not in src/%s/",
              g->mods[i].name, g->mods[i].folder);
  for (int i = 0; i < g->nedges; i++) {
    const struct edge *e = &g->edges[i];
    int lf = g->mods[e->from].layer, lt = g->mods[e->to].layer;
    if (lf >= 0 && lt > lf)
      problem(g, "src/%s includes %s.h: module %s (layer \"%s\") reaches up "
              "to %s (layer \"%s\")", e->file, g->mods[e->to].name,
              g->mods[e->from].name, g->layers[lf].name, g->mods[e->to].name,
              g->layers[lt].name);
  }
  find_cycles(g, "modules include each other");
  return g->problems;
}

/* --- lua/: require edges ------------------------------------------------ */

/* Every require("tghost.NAME") / require "tghost.NAME" / require('...')
 * whose NAME is a file of lua/ (C modules are not files: no edge). */
static void read_requires(struct graph *g, const char *dir, const char *file) {
  const char *dot = strrchr(file, '.');
  if (!dot || strcmp(dot, ".lua") != 0) return;
  char module[NAME_LEN];
  snprintf(module, sizeof module, "%.*s", (int)(dot - file), file);
  int from = module_index(g, module);
  g->mods[from].on_disk = true;
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  FILE *f = fopen(path, "r");
  if (!f) die("cannot read %s: %s", path);
  char line[2048];
  while (fgets(line, sizeof line, f)) {
    char *comment = strstr(line, "--");
    if (comment) *comment = '\0';
    for (char *p = strstr(line, "require"); p; p = strstr(p + 7, "require")) {
      const char *q = p + 7;
      while (*q == ' ' || *q == '(' || *q == ',') q++;
      if (*q != '"' && *q != '\'') continue;
      char quote = *q++;
      const char *end = strchr(q, quote);
      if (!end) continue;
      char name[NAME_LEN];
      snprintf(name, sizeof name, "%.*s", (int)(end - q), q);
      const char *target = name;
      if (strcmp(name, "tghost") == 0) target = "tghost";
      else if (strncmp(name, "tghost.", 7) == 0) target = name + 7;
      else continue;
      char target_path[4096];
      snprintf(target_path, sizeof target_path, "%s/%s.lua", dir, target);
      if (access(target_path, F_OK) != 0) continue;   /* a C module */
      char where[600];
      snprintf(where, sizeof where, "lua/%s", file);
      add_edge(g, from, module_index(g, target), where);
    }
  }
  fclose(f);
}

static int check_lua(const char *dir, struct graph *g) {
  memset(g, 0, sizeof *g);
  DIR *d = opendir(dir);
  if (!d) die("cannot open %s: %s", dir);
  struct dirent *ent;
  while ((ent = readdir(d))) read_requires(g, dir, ent->d_name);
  closedir(d);
  find_cycles(g, "Lua modules require each other");
  return g->problems;
}

/* --- the self-test ------------------------------------------------------ */

static void copy_file(const char *from, const char *to) {
  FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
  if (!in || !out) die("cannot copy %s: %s", from);
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
  fclose(in);
  fclose(out);
}

/* Copies files and one level of folders (src/ and lua/ have no deeper). */
static void copy_tree(const char *from, const char *to) {
  DIR *d = opendir(from);
  if (!d) die("cannot open %s: %s", from);
  struct dirent *ent;
  while ((ent = readdir(d))) {
    if (ent->d_name[0] == '.') continue;
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s/%s", from, ent->d_name);
    snprintf(b, sizeof b, "%s/%s", to, ent->d_name);
    struct stat st;
    if (stat(a, &st) != 0) die("cannot stat %s: %s", a);
    if (S_ISDIR(st.st_mode)) {
      if (mkdir(b, 0700) != 0) die("cannot make %s: %s", b);
      copy_tree(a, b);
    } else {
      copy_file(a, b);
    }
  }
  closedir(d);
}

static void append_line(const char *dir, const char *file, const char *line) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  FILE *f = fopen(path, "a");
  if (!f) die("cannot write %s: %s", path);
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
    struct stat st;
    if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) remove_tree(p);
    else unlink(p);
  }
  closedir(d);
  rmdir(dir);
}

static int failures;

static void expect(bool ok, const char *what) {
  fprintf(stderr, "self-test: %s: %s\n", what, ok ? "caught" : "MISSED");
  if (!ok) failures++;
}

/* Each plant is made in a fresh copy of the tree: line appended to file
 * (relative to the tree), then the check must report must_report. */
static void plant(const char *tree, bool lua, const char *file,
                  const char *line, const char *must_report,
                  const char *what) {
  char dir[] = "/tmp/tghost-layers-XXXXXX";
  if (!mkdtemp(dir)) die("cannot make %s: %s", "/tmp/tghost-layers-*");
  copy_tree(tree, dir);
  append_line(dir, file, line);
  fprintf(stderr, "self-test: planting %s\n", what);
  static struct graph g;
  int n = lua ? check_lua(dir, &g) : check_src(dir, &g);
  expect(n > 0 && strstr(g.report, must_report) != NULL, what);
  remove_tree(dir);
}

static int self_test(const char *src, const char *lua) {
  static struct graph g;
  int n = check_src(src, &g) + check_lua(lua, &g);
  fprintf(stderr, "self-test: the untouched trees have %d problem(s)\n", n);
  if (n != 0) failures++;

  /* inflight and sink share a layer; sink includes inflight already. */
  plant(src, false, "pipeline/inflight.c", "#include \"pipeline/sink.h\"",
        "in a circle: ", "a circle inside one layer (inflight -> sink)");
  /* The scheduler reaching up to the generation (as it once did). */
  plant(src, false, "sched/task.c", "#include \"script/generation.h\"",
        "src/sched/task.c includes generation.h",
        "an upward include (task -> generation)");
  plant(src, false, "pipeline/newmodule.c", "/* an unlisted module */",
        "module newmodule (src/pipeline/newmodule.c) has no layer",
        "a module missing from the table");
  plant(src, false, "base/sink.h", "/* a module in the wrong folder */",
        "module sink is in src/base/",
        "a module outside the folder of its layer");
  plant(src, false, "pipeline/sink.c", "#include \"inflight.h\"",
        "name the folder", "an include without its folder");
  /* A late require, inside a function, closing a circle. */
  plant(lua, true, "filter.lua",
        "local function late() return require(\"tghost.composer\") end",
        "Lua modules require each other in a circle",
        "a late Lua require circle (filter -> composer -> filter)");
  fprintf(stderr, "self-test: %s\n",
          failures ? "FAILED" : "every plant caught");
  return failures ? 1 : 0;
}

static void print_layers(const struct graph *g) {
  fprintf(stderr, "the layers, bottom first (src/README.md):\n");
  for (int l = 0; l < g->nlayers; l++) {
    fprintf(stderr, "  %-18s %-9s", g->layers[l].name, g->layers[l].folder);
    for (int i = 0; i < g->n; i++)
      if (g->mods[i].layer == l) fprintf(stderr, " %s", g->mods[i].name);
    fprintf(stderr, "\n");
  }
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "--self-test") == 0)
    return self_test(argv[2], argv[3]);
  if (argc != 3) {
    fprintf(stderr, "usage: layer_check [--self-test] SRC_DIR LUA_DIR\n");
    return 2;
  }
  static struct graph src, lua;
  int n = check_src(argv[1], &src);
  int m = check_lua(argv[2], &lua);
  if (n) print_layers(&src);
  if (n || m) {
    fprintf(stderr, "layer check: %d problem(s)\n", n + m);
    return 1;
  }
  printf("layer check: %d modules in %d layers, %d includes, no circle, "
         "nothing reaches up; %d Lua modules, %d requires, no circle\n",
         src.n, src.nlayers, src.nedges, lua.n, lua.nedges);
  return 0;
}
