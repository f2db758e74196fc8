#include "sandbox/sandbox_script.h"

#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const script_commands[] = {
    "click", "user", "group", "private", "photo", "document", "location",
    "edit", "reply", "sleep", "timeout", "help", "quit", "inline", "choose",
    "react", "vote", "pay", "join", "leave", "request", "webapp", "business",
    "wait", NULL};

static bool known_command(const char *line) {
  size_t n = strcspn(line + 1, " \t");
  for (const char *const *c = script_commands; *c; c++)
    if (strlen(*c) == n && strncmp(line + 1, *c, n) == 0) return true;
  return false;
}

/* ${NAME} -> the environment's NAME (CI passes URLs and names this way).
 * -1 with err set when NAME is not set. */
static int expand(const char *path, int lineno, const char *text,
                  struct buf *out, struct buf *err) {
  while (*text) {
    const char *open = strstr(text, "${");
    const char *close = open ? strchr(open, '}') : NULL;
    if (!open || !close) {
      buf_append_str(out, text);
      break;
    }
    buf_append(out, text, (size_t)(open - text));
    char *name = xstrndup(open + 2, (size_t)(close - open - 2));
    const char *value = getenv(name);
    if (!value) {
      buf_printf(err, "%s:%d: ${%s} is not set in the environment", path,
                 lineno, name);
      free(name);
      return -1;
    }
    buf_append_str(out, value);
    free(name);
    text = close + 1;
  }
  if (!out->data) buf_reserve(out, 0);
  return 0;
}

static void add_step(struct script *s, enum script_step_kind kind,
                     const char *text, int line) {
  s->steps = xrealloc(s->steps, (s->nsteps + 1) * sizeof *s->steps);
  struct script_step *st = &s->steps[s->nsteps++];
  st->kind = kind;
  st->text = xstrdup(text);
  st->line = line;
}

int script_load(const char *path, struct script *s, struct buf *err) {
  memset(s, 0, sizeof *s);
  FILE *f = fopen(path, "r");
  if (!f) {
    buf_printf(err, "cannot read --script %s: %s", path, strerror(errno));
    return -1;
  }
  s->path = xstrdup(path);
  char *copy = xstrdup(path);
  s->dir = xstrdup(dirname(copy));
  free(copy);
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  int lineno = 0, rc = 0;
  while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
    lineno++;
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
      line[--len] = '\0';
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (*p == '\0' || *p == '#') continue;
    struct buf expanded = BUF_INIT;
    if (expand(path, lineno, p, &expanded, err) != 0) {
      buf_free(&expanded);
      rc = -1;
      break;
    }
    p = expanded.data;
    if (*p == '>' || *p == '<') {
      char *text = p + 1;
      if (*text == ' ') text++;
      if (*text == '\0') {
        buf_printf(err, "%s:%d: '%c' needs a text after it", path, lineno, *p);
        rc = -1;
      } else {
        add_step(s, *p == '>' ? STEP_SAY : STEP_EXPECT, text, lineno);
      }
    } else if (*p == ':' && isalpha((unsigned char)p[1])) {
      if (known_command(p)) {
        add_step(s, STEP_COMMAND, p, lineno);
      } else {
        buf_printf(err, "%s:%d: unknown sandbox command '%.*s' (known:", path,
                   lineno, (int)strcspn(p, " \t"), p);
        for (const char *const *c = script_commands; *c; c++)
          buf_printf(err, " :%s", *c);
        buf_append_char(err, ')');
        rc = -1;
      }
    } else {
      buf_printf(err, "%s:%d: a line starts with '>' (you say), '<' (the bot "
                 "says), ':' (a sandbox command) or '#' (a comment)", path,
                 lineno);
      rc = -1;
    }
    buf_free(&expanded);
  }
  free(line);
  fclose(f);
  if (rc != 0) script_free(s);
  return rc;
}

void script_free(struct script *s) {
  for (size_t i = 0; i < s->nsteps; i++) free(s->steps[i].text);
  free(s->steps);
  free(s->path);
  free(s->dir);
  memset(s, 0, sizeof *s);
}
