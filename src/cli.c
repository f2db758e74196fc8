#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <lua.h>

static const char usage[] =
    "usage: tghost [options] SCRIPT.lua\n"
    "\n"
    "Runs a Telegram bot written in Lua with long polling.\n"
    "\n"
    "The bot token is read from BOT_TOKEN, or from --token-file.\n"
    "\n"
    "options:\n"
    "  --token-file FILE       read the bot token from FILE\n"
    "  --api-root URL          Bot API server (default https://api.telegram.org;\n"
    "                          also TGHOST_API_ROOT)\n"
    "  --no-watch              do not reload the script when it changes\n"
    "                          (SIGHUP still reloads it)\n"
    "  --drain-timeout SECS    on SIGINT/SIGTERM, how long in-flight updates may\n"
    "                          take to finish before they are cancelled (30)\n"
    "  --cpu-budget SECS       CPU time a handler may run without yielding\n"
    "                          (0.25)\n"
    "  --log-level LEVEL       debug, info, warn or error (info)\n"
    "  --log-format FORMAT     text or json (text)\n"
    "  --check                 load and validate the script, make no network call\n"
    "  -h, --help              show this help\n"
    "  -V, --version           show the version\n";

static int parse_seconds(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || v < 0 || v > 1e7) return -1;
  *out = v;
  return 0;
}

static char *read_token_file(const char *path, struct buf *err) {
  FILE *f = fopen(path, "r");
  if (!f) {
    buf_printf(err, "cannot read --token-file %s: %s", path, strerror(errno));
    return NULL;
  }
  char line[512];
  size_t n = fread(line, 1, sizeof line - 1, f);
  fclose(f);
  line[n] = '\0';
  char *s = line;
  while (*s && isspace((unsigned char)*s)) s++;
  char *e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
  if (!*s) {
    buf_printf(err, "--token-file %s is empty", path);
    return NULL;
  }
  return xstrdup(s);
}

enum cli_result cli_parse(int argc, char **argv, struct config *cfg,
                          struct buf *err) {
  enum {
    OPT_TOKEN_FILE = 1000, OPT_API_ROOT, OPT_NO_WATCH, OPT_DRAIN,
    OPT_CPU, OPT_LOG_LEVEL, OPT_LOG_FORMAT, OPT_CHECK
  };
  static const struct option longopts[] = {
      {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
      {"api-root", required_argument, NULL, OPT_API_ROOT},
      {"no-watch", no_argument, NULL, OPT_NO_WATCH},
      {"drain-timeout", required_argument, NULL, OPT_DRAIN},
      {"cpu-budget", required_argument, NULL, OPT_CPU},
      {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
      {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
      {"check", no_argument, NULL, OPT_CHECK},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},
      {NULL, 0, NULL, 0}};

  memset(cfg, 0, sizeof *cfg);
  cfg->watch = true;
  cfg->drain_timeout_s = 30;
  /* Everything else waits while a handler runs without yielding: a stuck
   * one freezes the bot for this long (measured with bench/cpu_budget.c:
   * at 250 ms the stall is about 0.3 s, and sorting 200,000 numbers or
   * decoding 2 MB of JSON in one stretch still fits). */
  cfg->cpu_budget_ms = 250;
  cfg->log_level = LOG_INFO;
  cfg->log_format = LOG_FORMAT_TEXT;
  const char *token_file = NULL;
  const char *api_root = getenv("TGHOST_API_ROOT");

  opterr = 0;
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, "+hV", longopts, NULL)) != -1) {
    double secs;
    switch (c) {
      case 'h':
        fputs(usage, stdout);
        return CLI_EXIT_OK;
      case 'V':
        printf("tghost %s (%s, %s, libevent %s)\n", TGHOST_VERSION,
               LUA_RELEASE, curl_version(), event_get_version());
        return CLI_EXIT_OK;
      case OPT_TOKEN_FILE: token_file = optarg; break;
      case OPT_API_ROOT: api_root = optarg; break;
      case OPT_NO_WATCH: cfg->watch = false; break;
      case OPT_CHECK: cfg->check = true; break;
      case OPT_DRAIN:
        if (parse_seconds(optarg, &secs) != 0) {
          buf_printf(err, "--drain-timeout needs a number of seconds, not '%s'",
                     optarg);
          return CLI_ERROR;
        }
        cfg->drain_timeout_s = secs;
        break;
      case OPT_CPU:
        if (parse_seconds(optarg, &secs) != 0 || secs < 0.001) {
          buf_printf(err, "--cpu-budget needs a positive number of seconds, "
                     "not '%s'", optarg);
          return CLI_ERROR;
        }
        cfg->cpu_budget_ms = (long)(secs * 1000);
        break;
      case OPT_LOG_LEVEL:
        if (log_parse_level(optarg, &cfg->log_level) != 0) {
          buf_printf(err, "--log-level must be debug, info, warn or error, "
                     "not '%s'", optarg);
          return CLI_ERROR;
        }
        break;
      case OPT_LOG_FORMAT:
        if (log_parse_format(optarg, &cfg->log_format) != 0) {
          buf_printf(err, "--log-format must be text or json, not '%s'",
                     optarg);
          return CLI_ERROR;
        }
        break;
      case '?':
      default:
        if (optopt)
          buf_printf(err, "option -%c is unknown or needs a value", optopt);
        else
          buf_printf(err, "unknown option or missing value: %s",
                     argv[optind - 1]);
        buf_append_str(err, " (see tghost --help)");
        return CLI_ERROR;
    }
  }
  if (optind >= argc) {
    buf_append_str(err, "no script given (usage: tghost [options] SCRIPT.lua)");
    return CLI_ERROR;
  }
  if (optind + 1 < argc) {
    buf_printf(err, "one script at a time: unexpected argument '%s'",
               argv[optind + 1]);
    return CLI_ERROR;
  }
  cfg->script = xstrdup(argv[optind]);
  cfg->api_root = xstrdup(api_root && *api_root ? api_root
                                                : "https://api.telegram.org");
  if (strncmp(cfg->api_root, "http://", 7) != 0 &&
      strncmp(cfg->api_root, "https://", 8) != 0) {
    buf_printf(err, "--api-root must start with http:// or https://, not '%s'",
               cfg->api_root);
    return CLI_ERROR;
  }
  if (token_file) {
    cfg->token = read_token_file(token_file, err);
    if (!cfg->token) return CLI_ERROR;
  } else {
    const char *env = getenv("BOT_TOKEN");
    if (env && *env) cfg->token = xstrdup(env);
  }
  return CLI_RUN;
}

void cli_free(struct config *cfg) {
  free(cfg->script);
  free(cfg->api_root);
  if (cfg->token) {
    memset(cfg->token, 0, strlen(cfg->token));
    free(cfg->token);
  }
}
