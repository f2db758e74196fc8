/* The command line: tghost [options] SCRIPT.lua */
#ifndef TGHOST_CLI_H
#define TGHOST_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "base/buf.h"
#include "base/log.h"

struct config {
  char *script;
  char *token;              /* from BOT_TOKEN or --token-file; may be NULL */
  char *api_root;
  bool watch;
  double drain_timeout_s;
  long cpu_budget_ms;
  char *journal;              /* --journal FILE, or NULL */
  bool dead_letters;          /* --dead-letters: list them and exit */
  long memory_limit_mb;       /* all Lua states together; 0: no limit */
  long update_memory_limit_mb;/* one job's share; 0: no limit */
  enum log_level log_level;
  enum log_format log_format;
  bool check;
  bool trace;               /* --trace: each update and API call, one line */
  bool sandbox;             /* --sandbox: the emulated Bot API, no token */
  char *sandbox_script;     /* --script FILE: a transcript to play */
  char *webhook_url;        /* --webhook URL (with --listen), or NULL */
  char *webhook_listen;     /* --listen ADDR:PORT */
  char *webhook_secret_file;/* --webhook-secret-file FILE */
  char *metrics_addr;       /* --metrics ADDR:PORT, or NULL */
  char *cluster_url;        /* --cluster redis://..., or NULL */
};

enum cli_result {
  CLI_RUN,      /* run with the parsed config */
  CLI_EXIT_OK,  /* --help or --version was printed */
  CLI_ERROR,    /* err says why; exit status 2 */
};

/* One command-line option. cli_options lists them all (ending with a NULL
 * name): getopt's table, --help and the man page are made from it. */
struct cli_option {
  const char *name;           /* the long name, without "--" */
  int short_name;             /* 'h' for -h, or 0 */
  const char *arg;            /* the value's name (FILE, SECS); NULL: a flag */
  int id;
  const char *default_value;  /* applied before the command line; shown */
  const char *help;           /* one paragraph for --help and the man page */
  const char *man;            /* more for the man page only, or NULL */
};
extern const struct cli_option cli_options[];

/* The --help text. */
void cli_print_help(FILE *out);

/* The Bot API version --version names (main gives it: the generated
 * method table lives above this layer). */
void cli_set_botapi_version(const char *version);

enum cli_result cli_parse(int argc, char **argv, struct config *cfg,
                          struct buf *err);
void cli_free(struct config *cfg);

#endif
