/* Builds the man page: contrib/tghost.1.in with its @OPTIONS@ line
 * replaced by the options of src/base/cli.c's table (the one --help
 * prints) and @VERSION@ by the version, so the page cannot miss an option
 * or show a stale default.
 *
 *   manpage TEMPLATE OUTPUT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cli.h"

/* Text as roff reads it: backslashes and hyphens escaped, no line taken
 * for a request. */
static void roff_text(FILE *out, const char *s) {
  if (*s == '.' || *s == '\'') fputs("\\&", out);
  for (; *s; s++) {
    if (*s == '\\') fputs("\\e", out);
    else if (*s == '-') fputs("\\-", out);
    else fputc(*s, out);
  }
}

static void write_options(FILE *out) {
  for (const struct cli_option *o = cli_options; o->name; o++) {
    fputs(".TP\n", out);
    if (o->short_name) fprintf(out, ".BR \\-%c \", \" ", o->short_name);
    else fputs(o->arg ? ".BI " : ".B ", out);
    fputs("\\-\\-", out);
    roff_text(out, o->name);
    if (o->arg) {
      fputs(" \" ", out);
      roff_text(out, o->arg);
      fputc('"', out);
    }
    fputc('\n', out);
    /* --help's text starts lower-case, as a table cell; the page's starts a
     * sentence. */
    char first[2] = {o->help[0], '\0'};
    if (first[0] >= 'a' && first[0] <= 'z') first[0] = (char)(first[0] - 32);
    roff_text(out, first);
    roff_text(out, o->help + 1);
    if (o->default_value) {
      fputs(" (default: ", out);
      roff_text(out, o->default_value);
      fputc(')', out);
    }
    fputs(".\n", out);
    if (o->man) {
      roff_text(out, o->man);
      fputc('\n', out);
    }
  }
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: manpage TEMPLATE OUTPUT\n");
    return 2;
  }
  FILE *in = fopen(argv[1], "r");
  if (!in) {
    perror(argv[1]);
    return 1;
  }
  FILE *out = fopen(argv[2], "w");
  if (!out) {
    perror(argv[2]);
    fclose(in);
    return 1;
  }
  char line[4096];
  int options_written = 0;
  while (fgets(line, sizeof line, in)) {
    if (strcmp(line, "@OPTIONS@\n") == 0) {
      write_options(out);
      options_written = 1;
      continue;
    }
    char *v = strstr(line, "@VERSION@");
    if (v) {
      fwrite(line, 1, (size_t)(v - line), out);
      fputs(TGHOST_VERSION, out);
      fputs(v + strlen("@VERSION@"), out);
    } else {
      fputs(line, out);
    }
  }
  fclose(in);
  if (fclose(out) != 0 || !options_written) {
    fprintf(stderr, "manpage: %s\n", options_written ? "cannot write the page"
                                                     : "no @OPTIONS@ line in "
                                                       "the template");
    remove(argv[2]);
    return 1;
  }
  return 0;
}
