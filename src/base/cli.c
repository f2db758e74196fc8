#include "base/cli.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <lua.h>

#include "base/netaddr.h"

/* The options, in the order --help lists them. getopt's table, --help and
 * the man page (contrib/manpage.c) are all made from this list, and a
 * default given here is the one cli_parse applies, so none of them can
 * drift from the others. */
enum {
  OPT_TOKEN_FILE = 1000, OPT_API_ROOT, OPT_NO_WATCH, OPT_DRAIN, OPT_CPU,
  OPT_LOG_LEVEL, OPT_LOG_FORMAT, OPT_CHECK, OPT_MEMORY, OPT_UPDATE_MEMORY,
  OPT_TRACE, OPT_SANDBOX, OPT_SCRIPT, OPT_JOURNAL, OPT_DEAD_LETTERS,
  OPT_WEBHOOK, OPT_LISTEN, OPT_WEBHOOK_SECRET_FILE, OPT_METRICS, OPT_CLUSTER,
  OPT_HELP = 'h', OPT_VERSION = 'V'
};

const struct cli_option cli_options[] = {
    {"sandbox", 0, NULL, OPT_SANDBOX, NULL,
     "talk to the bot in this terminal: an emulated Bot API, no token, no "
     "network (:help inside)",
     "The emulated Bot API runs on 127.0.0.1 with its own chat state. Each "
     "line typed at the prompt is a message (arrow keys edit it and recall "
     "earlier ones); lines starting with : are sandbox commands (:help, "
     ":click N, :user NAME, :group NAME, :photo PATH, ...). Ctrl-D or :quit "
     "leaves; Ctrl-C stops the bot as SIGINT does."},
    {"script", 0, "FILE", OPT_SCRIPT, NULL,
     "with --sandbox: play the transcript FILE instead, and exit 1 unless "
     "the bot answers as written",
     "A transcript has lines \"> text\" to send, \"< text\" to expect and "
     "sandbox commands (\":click 1\"). It fails (status 1) at an "
     "expectation not met within its timeout, when it has no expectation at "
     "all, when the bot never starts (no run(bot)), and when the bot stops "
     "before every expectation was reached."},
    {"trace", 0, NULL, OPT_TRACE, NULL,
     "log each update received and each Bot API call", NULL},
    {"token-file", 0, "FILE", OPT_TOKEN_FILE, NULL,
     "read the bot token from FILE (instead of BOT_TOKEN)", NULL},
    {"api-root", 0, "URL", OPT_API_ROOT, NULL,
     "the Bot API server (default https://api.telegram.org; also "
     "TGHOST_API_ROOT)", NULL},
    {"no-watch", 0, NULL, OPT_NO_WATCH, NULL,
     "do not reload the script when it changes (SIGHUP still reloads it)",
     NULL},
    {"drain-timeout", 0, "SECS", OPT_DRAIN, "30",
     "on SIGINT/SIGTERM, how long in-flight updates may take to finish "
     "before they are cancelled", NULL},
    /* Everything else waits while a handler runs without yielding: a stuck
     * one freezes the bot for this long (measured with bench/cpu_budget.c:
     * at 250 ms the stall is about 0.3 s, and sorting 200,000 numbers or
     * decoding 2 MB of JSON in one stretch still fits). */
    {"cpu-budget", 0, "SECS", OPT_CPU, "0.25",
     "CPU time a handler may run without yielding before it is stopped",
     NULL},
    {"memory-limit", 0, "MB", OPT_MEMORY, "1024",
     "Lua memory of all handlers together, 0 for no limit", NULL},
    {"update-memory-limit", 0, "MB", OPT_UPDATE_MEMORY, "256",
     "Lua memory one update's handler may take, 0 for no limit", NULL},
    {"log-level", 0, "LEVEL", OPT_LOG_LEVEL, "info",
     "debug, info, warn or error; debug includes --trace; also "
     "TGHOST_LOG_LEVEL", NULL},
    {"log-format", 0, "FORMAT", OPT_LOG_FORMAT, "text",
     "text or json lines on stderr; also TGHOST_LOG_FORMAT", NULL},
    {"journal", 0, "FILE", OPT_JOURNAL, NULL,
     "record fetched updates in FILE so that a crash loses none", NULL},
    {"dead-letters", 0, NULL, OPT_DEAD_LETTERS, NULL,
     "with --journal or --cluster: list the updates that kept failing, and "
     "exit", NULL},
    {"cluster", 0, "URL", OPT_CLUSTER, NULL,
     "share the bot with other tghost processes through Redis 7 "
     "(redis://HOST:PORT/DB or unix:///path/redis.sock)",
     "Every process started with the same URL and token takes a share of "
     "the updates; a chat's updates keep their order, and the updates of a "
     "process that dies or pauses are taken over by the others. Redis "
     "should run with appendonly yes and appendfsync always. See "
     "docs/operations/cluster.md."},
    {"webhook", 0, "URL", OPT_WEBHOOK, NULL,
     "receive updates as POSTs to URL (https, through a TLS proxy) instead "
     "of polling; needs --listen",
     "tghost calls setWebhook at start and leaves the webhook set when it "
     "stops (deleteWebhook removes it)."},
    {"listen", 0, "ADDR:PORT", OPT_LISTEN, NULL,
     "where the webhook is served, e.g. 127.0.0.1:8080",
     "[::1]:8080 for IPv6, :8080 for every interface; port 0 picks a free "
     "one, which is logged."},
    {"webhook-secret-file", 0, "FILE", OPT_WEBHOOK_SECRET_FILE, NULL,
     "the secret Telegram sends with each POST (default: a random one per "
     "start)",
     "1 to 256 characters of A-Z, a-z, 0-9, _ and -."},
    {"metrics", 0, "ADDR:PORT", OPT_METRICS, NULL,
     "serve /metrics (Prometheus) and /healthz",
     "/healthz answers 200, or 503 with a reason."},
    {"check", 0, NULL, OPT_CHECK, NULL,
     "load and validate the script, make no network call", NULL},
    {"help", 'h', NULL, OPT_HELP, NULL, "show this help", NULL},
    {"version", 'V', NULL, OPT_VERSION, NULL, "show the version", NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL}};

/* Writes text at column indent, wrapped before width columns, after
 * something `at` columns wide (on a line of its own when that leaves
 * less than two spaces). */
static void wrap(FILE *out, const char *text, int at, int indent, int width) {
  if (at + 2 > indent) {
    fputc('\n', out);
    at = 0;
  }
  fprintf(out, "%*s", indent - at, "");
  int col = indent;
  const char *p = text;
  while (*p) {
    size_t n = strcspn(p, " ");
    if (col > indent && col + 1 + (int)n > width) {
      fprintf(out, "\n%*s", indent, "");
      col = indent;
    } else if (col > indent) {
      fputc(' ', out);
      col++;
    }
    fwrite(p, 1, n, out);
    col += (int)n;
    p += n;
    while (*p == ' ') p++;
  }
  fputc('\n', out);
}

void cli_print_help(FILE *out) {
  fputs("usage: tghost [options] SCRIPT.lua [options]\n"
        "\n"
        "Runs a Telegram bot written in Lua, with long polling or a webhook.\n"
        "\n"
        "The bot token is read from BOT_TOKEN, or from --token-file.\n"
        "\n"
        "options:\n", out);
  for (const struct cli_option *o = cli_options; o->name; o++) {
    struct buf head = BUF_INIT, text = BUF_INIT;
    if (o->short_name) buf_printf(&head, "  -%c, --%s", o->short_name, o->name);
    else buf_printf(&head, "  --%s", o->name);
    if (o->arg) buf_printf(&head, " %s", o->arg);
    buf_append_str(&text, o->help);
    if (o->default_value) buf_printf(&text, " (%s)", o->default_value);
    fputs(head.data, out);
    wrap(out, text.data, (int)head.len, 26, 79);
    buf_free(&head);
    buf_free(&text);
  }
}

static int parse_seconds(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || v < 0 || v > 1e7) return -1;
  *out = v;
  return 0;
}

static int parse_megabytes(const char *s, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < 0 || v > (1L << 30)) return -1;
  *out = v;
  return 0;
}

/* A usable API root: http(s), a host, a valid port, nothing after the
 * path. Checked with curl's own URL parser, which the requests use. */
static int check_api_root(const char *root, struct buf *err) {
  if (strncmp(root, "http://", 7) != 0 && strncmp(root, "https://", 8) != 0) {
    buf_printf(err, "--api-root must start with http:// or https://, not '%s'",
               root);
    return -1;
  }
  CURLU *u = curl_url();
  if (!u) {
    buf_append_str(err, "out of memory");
    return -1;
  }
  CURLUcode rc = curl_url_set(u, CURLUPART_URL, root, 0);
  char *host = NULL, *query = NULL, *port = NULL;
  if (rc == CURLUE_OK) rc = curl_url_get(u, CURLUPART_HOST, &host, 0);
  if (rc == CURLUE_OK && (!host || !*host)) rc = CURLUE_NO_HOST;
  if (rc == CURLUE_OK && curl_url_get(u, CURLUPART_PORT, &port, 0) ==
      CURLUE_OK && strcmp(port, "0") == 0)
    rc = CURLUE_BAD_PORT_NUMBER;
  curl_free(port);
  bool extra = rc == CURLUE_OK &&
               curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK;
  curl_free(host);
  curl_free(query);
  curl_url_cleanup(u);
  if (rc != CURLUE_OK) {
    buf_printf(err, "--api-root '%s' is not a usable URL: %s", root,
               curl_url_strerror(rc));
    return -1;
  }
  if (extra) {
    buf_printf(err, "--api-root '%s' must not have a query (?...)", root);
    return -1;
  }
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

/* A token as @BotFather gives it: the bot's id, a colon, and a secret of
 * letters, digits, '-' and '_'. Anything else would only fail at the
 * network, after retries (a token without its id, quotes or a newline from
 * an env file). Says what is wrong without showing the token. */
static int check_token_shape(const char *token, const char *source,
                             struct buf *err) {
  const char *colon = strchr(token, ':');
  const char *problem = NULL;
  size_t id_len = colon ? (size_t)(colon - token) : 0;
  if (token[0] == '"' || token[0] == '\'') problem = "it is in quotes";
  else if (strncmp(token, "bot", 3) == 0 && token[3] >= '0' && token[3] <= '9')
    problem = "it starts with 'bot', which belongs to the API's URL, not to "
              "the token";
  else if (!colon) problem = "it has no ':'";
  else if (id_len == 0 || strspn(token, "0123456789") != id_len)
    problem = "the part before ':' is not a number";
  else if (!colon[1]) problem = "nothing follows the ':'";
  else if (strspn(colon + 1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV"
                             "WXYZ0123456789-_") != strlen(colon + 1))
    problem = "the part after ':' has characters other than letters, "
              "digits, - and _ (a space, a quote, a line break?)";
  if (!problem) return 0;
  buf_printf(err, "%s is not a bot token: %s; a token looks like "
             "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11 (get one from "
             "@BotFather)", source, problem);
  return -1;
}

static void set_string(char **field, const char *value) {
  free(*field);
  *field = xstrdup(value);
}

/* --webhook, --listen, --webhook-secret-file and --metrics. */
static int check_production(const struct config *cfg, struct buf *err) {
  struct sockaddr_storage ss;
  socklen_t len;
  if ((cfg->webhook_url != NULL) != (cfg->webhook_listen != NULL)) {
    buf_append_str(err, cfg->webhook_url
                            ? "--webhook needs --listen ADDR:PORT (where "
                              "tghost receives the POSTs your proxy passes on)"
                            : "--listen serves a webhook: give --webhook URL "
                              "too");
    return -1;
  }
  if (cfg->webhook_secret_file && !cfg->webhook_url) {
    buf_append_str(err, "--webhook-secret-file goes with --webhook URL");
    return -1;
  }
  if (cfg->webhook_url && strncmp(cfg->webhook_url, "https://", 8) != 0 &&
      strncmp(cfg->webhook_url, "http://", 7) != 0) {
    buf_printf(err, "--webhook must be an https:// URL (Telegram posts only "
               "over HTTPS), not '%s'", cfg->webhook_url);
    return -1;
  }
  if (cfg->webhook_url && cfg->sandbox) {
    buf_append_str(err, "--sandbox cannot be combined with --webhook");
    return -1;
  }
  if (cfg->webhook_listen &&
      netaddr_parse(cfg->webhook_listen, "--listen", &ss, &len, err) != 0)
    return -1;
  if (cfg->metrics_addr &&
      netaddr_parse(cfg->metrics_addr, "--metrics", &ss, &len, err) != 0)
    return -1;
  return 0;
}

/* What cli_parse collects besides cfg. */
struct parse_state {
  const char *token_file;
  const char *api_root;
  bool api_root_option;
};

static const char *botapi_version_shown = "?";

void cli_set_botapi_version(const char *version) {
  botapi_version_shown = version;
}

/* Applies one option (from the command line, or its default). Returns
 * CLI_RUN to go on, CLI_EXIT_OK after --help/--version, or CLI_ERROR. */
static enum cli_result apply(int id, const char *value, struct config *cfg,
                             struct parse_state *st, struct buf *err) {
  double secs;
  switch (id) {
    case OPT_HELP:
      cli_print_help(stdout);
      return CLI_EXIT_OK;
    case OPT_VERSION:
      printf("tghost %s (Telegram Bot API %s; %s, %s, libevent %s)\n",
             TGHOST_VERSION, botapi_version_shown, LUA_RELEASE, curl_version(),
             event_get_version());
      return CLI_EXIT_OK;
    case OPT_TOKEN_FILE: st->token_file = value; break;
    case OPT_API_ROOT:
      st->api_root = value;
      st->api_root_option = true;
      break;
    case OPT_NO_WATCH: cfg->watch = false; break;
    case OPT_CHECK: cfg->check = true; break;
    case OPT_TRACE: cfg->trace = true; break;
    case OPT_SANDBOX: cfg->sandbox = true; break;
    case OPT_JOURNAL:
      free(cfg->journal);
      cfg->journal = *value ? xstrdup(value) : NULL;
      break;
    case OPT_DEAD_LETTERS: cfg->dead_letters = true; break;
    case OPT_WEBHOOK: set_string(&cfg->webhook_url, value); break;
    case OPT_LISTEN: set_string(&cfg->webhook_listen, value); break;
    case OPT_WEBHOOK_SECRET_FILE:
      set_string(&cfg->webhook_secret_file, value);
      break;
    case OPT_METRICS: set_string(&cfg->metrics_addr, value); break;
    case OPT_CLUSTER: set_string(&cfg->cluster_url, value); break;
    case OPT_SCRIPT:
      free(cfg->sandbox_script);
      cfg->sandbox_script = xstrdup(value);
      break;
    case OPT_DRAIN:
      if (parse_seconds(value, &secs) != 0) {
        buf_printf(err, "--drain-timeout needs a number of seconds, not '%s'",
                   value);
        return CLI_ERROR;
      }
      cfg->drain_timeout_s = secs;
      break;
    case OPT_CPU:
      if (parse_seconds(value, &secs) != 0 || secs < 0.001) {
        buf_printf(err, "--cpu-budget needs a positive number of seconds, "
                   "not '%s'", value);
        return CLI_ERROR;
      }
      cfg->cpu_budget_ms = (long)(secs * 1000);
      break;
    case OPT_MEMORY:
    case OPT_UPDATE_MEMORY: {
      long mb;
      if (parse_megabytes(value, &mb) != 0) {
        buf_printf(err, "--%s needs a whole number of megabytes (1 or "
                   "more, 0 for no limit), not '%s'",
                   id == OPT_MEMORY ? "memory-limit" : "update-memory-limit",
                   value);
        return CLI_ERROR;
      }
      if (id == OPT_MEMORY) cfg->memory_limit_mb = mb;
      else cfg->update_memory_limit_mb = mb;
      break;
    }
    case OPT_LOG_LEVEL:
      if (log_parse_level(value, &cfg->log_level) != 0) {
        buf_printf(err, "--log-level must be debug, info, warn or error, "
                   "not '%s'", value);
        return CLI_ERROR;
      }
      break;
    case OPT_LOG_FORMAT:
      if (log_parse_format(value, &cfg->log_format) != 0) {
        buf_printf(err, "--log-format must be text or json, not '%s'", value);
        return CLI_ERROR;
      }
      break;
    default:
      buf_printf(err, "option id %d has no handler", id);
      return CLI_ERROR;
  }
  return CLI_RUN;
}

enum cli_result cli_parse(int argc, char **argv, struct config *cfg,
                          struct buf *err) {
  enum { NOPTS = sizeof cli_options / sizeof cli_options[0] };
  struct option longopts[NOPTS];
  char shortopts[2 * NOPTS + 1];
  size_t nshort = 0;
  for (size_t i = 0; i < NOPTS; i++) {
    const struct cli_option *o = &cli_options[i];
    longopts[i] = (struct option){o->name, o->arg ? required_argument
                                                  : no_argument,
                                  NULL, o->id};
    if (o->short_name) {
      shortopts[nshort++] = (char)o->short_name;
      if (o->arg) shortopts[nshort++] = ':';
    }
  }
  shortopts[nshort] = '\0';

  memset(cfg, 0, sizeof *cfg);
  cfg->watch = true;
  struct parse_state st = {NULL, getenv("TGHOST_API_ROOT"), false};
  for (const struct cli_option *o = cli_options; o->name; o++)
    if (o->default_value && apply(o->id, o->default_value, cfg, &st, err) !=
                                CLI_RUN)
      return CLI_ERROR;
  /* The environment sets the defaults (a systemd unit's Environment=);
   * options override it. */
  const char *env_level = getenv("TGHOST_LOG_LEVEL");
  if (env_level && *env_level &&
      log_parse_level(env_level, &cfg->log_level) != 0) {
    buf_printf(err, "TGHOST_LOG_LEVEL must be debug, info, warn or error, "
               "not '%s'", env_level);
    return CLI_ERROR;
  }
  const char *env_format = getenv("TGHOST_LOG_FORMAT");
  if (env_format && *env_format &&
      log_parse_format(env_format, &cfg->log_format) != 0) {
    buf_printf(err, "TGHOST_LOG_FORMAT must be text or json, not '%s'",
               env_format);
    return CLI_ERROR;
  }

  opterr = 0;
  optind = 1;
  int c;
  /* Options may come before or after the script ("--" ends them). */
  while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
    if (c == '?') {
      if (optopt)
        buf_printf(err, "option -%c is unknown or needs a value", optopt);
      else
        buf_printf(err, "unknown option or missing value: %s",
                   argv[optind - 1]);
      buf_append_str(err, " (see tghost --help)");
      return CLI_ERROR;
    }
    enum cli_result r = apply(c, optarg, cfg, &st, err);
    if (r != CLI_RUN) return r;
  }
  if (cfg->dead_letters) {
    if (!cfg->journal == !cfg->cluster_url) {
      buf_append_str(err, "--dead-letters lists the dead letters of a "
                          "journal or of a cluster: give --journal FILE or "
                          "--cluster URL (one of them)");
      return CLI_ERROR;
    }
    /* A cluster's keys are named by the bot's id: the token. */
    if (cfg->cluster_url) {
      if (st.token_file) {
        cfg->token = read_token_file(st.token_file, err);
        if (!cfg->token) return CLI_ERROR;
      } else if (getenv("BOT_TOKEN") && *getenv("BOT_TOKEN")) {
        cfg->token = xstrdup(getenv("BOT_TOKEN"));
      }
    }
    return CLI_RUN;   /* no script needed */
  }
  if (cfg->journal && cfg->cluster_url) {
    buf_append_str(err, "--journal and --cluster do not go together: a "
                        "cluster keeps every update in Redis until it is "
                        "handled (drop --journal)");
    return CLI_ERROR;
  }
  if (cfg->cluster_url && cfg->sandbox) {
    buf_append_str(err, "--sandbox runs one bot in this terminal: it cannot "
                        "join a --cluster");
    return CLI_ERROR;
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
  if (cfg->sandbox_script && !cfg->sandbox) {
    buf_append_str(err, "--script plays a transcript in the sandbox: add "
                        "--sandbox");
    return CLI_ERROR;
  }
  if (check_production(cfg, err) != 0) return CLI_ERROR;
  if (cfg->sandbox && (st.api_root_option || cfg->check)) {
    buf_printf(err, "--sandbox runs its own Bot API: it cannot be combined "
               "with %s", cfg->check ? "--check" : "--api-root");
    return CLI_ERROR;
  }
  cfg->script = xstrdup(argv[optind]);
  cfg->api_root = xstrdup(st.api_root && *st.api_root
                              ? st.api_root : "https://api.telegram.org");
  if (check_api_root(cfg->api_root, err) != 0) return CLI_ERROR;
  struct buf source = BUF_INIT;
  if (st.token_file) {
    cfg->token = read_token_file(st.token_file, err);
    if (!cfg->token) return CLI_ERROR;
    buf_printf(&source, "the token in %s", st.token_file);
  } else {
    const char *env = getenv("BOT_TOKEN");
    if (env && *env) cfg->token = xstrdup(env);
    buf_append_str(&source, "BOT_TOKEN");
  }
  /* The sandbox uses a token of its own. */
  int bad = cfg->token && !cfg->sandbox &&
            check_token_shape(cfg->token, source.data, err) != 0;
  buf_free(&source);
  return bad ? CLI_ERROR : CLI_RUN;
}

void cli_free(struct config *cfg) {
  free(cfg->script);
  free(cfg->sandbox_script);
  free(cfg->journal);
  free(cfg->api_root);
  free(cfg->webhook_url);
  free(cfg->webhook_listen);
  free(cfg->webhook_secret_file);
  free(cfg->metrics_addr);
  free(cfg->cluster_url);
  if (cfg->token) {
    memset(cfg->token, 0, strlen(cfg->token));
    free(cfg->token);
  }
}
