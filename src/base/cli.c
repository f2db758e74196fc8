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

static const char usage[] =
    "usage: tghost [options] SCRIPT.lua [options]\n"
    "\n"
    "Runs a Telegram bot written in Lua, with long polling or a webhook.\n"
    "\n"
    "The bot token is read from BOT_TOKEN, or from --token-file.\n"
    "\n"
    "options:\n"
    "  --sandbox               talk to the bot in this terminal: an emulated\n"
    "                          Bot API, no token, no network (:help inside)\n"
    "  --script FILE           with --sandbox: play the transcript FILE instead\n"
    "                          and exit 1 if the bot does not answer as written\n"
    "  --trace                 log each update received and each API call\n"
    "  --token-file FILE       read the bot token from FILE\n"
    "  --api-root URL          Bot API server (default https://api.telegram.org;\n"
    "                          also TGHOST_API_ROOT)\n"
    "  --no-watch              do not reload the script when it changes\n"
    "                          (SIGHUP still reloads it)\n"
    "  --drain-timeout SECS    on SIGINT/SIGTERM, how long in-flight updates may\n"
    "                          take to finish before they are cancelled (30)\n"
    "  --cpu-budget SECS       CPU time a handler may run without yielding\n"
    "                          (0.25)\n"
    "  --memory-limit MB       Lua memory of all handlers together (1024)\n"
    "  --update-memory-limit MB\n"
    "                          Lua memory one update's handler may take (256)\n"
    "  --log-level LEVEL       debug, info, warn or error (info; also\n"
    "                          TGHOST_LOG_LEVEL); debug includes --trace\n"
    "  --log-format FORMAT     text or json (text; also TGHOST_LOG_FORMAT)\n"
    "  --journal FILE          record fetched updates in FILE so that a crash\n"
    "                          loses none (see README, \"The journal\")\n"
    "  --dead-letters          with --journal: list the updates that kept\n"
    "                          failing, and exit\n"
    "  --webhook URL           receive updates as POSTs to URL (https, through\n"
    "                          a TLS proxy) instead of polling; needs --listen\n"
    "  --listen ADDR:PORT      where the webhook is served (127.0.0.1:8080)\n"
    "  --webhook-secret-file FILE\n"
    "                          the secret Telegram sends with each POST\n"
    "                          (default: a random one per start)\n"
    "  --metrics ADDR:PORT     serve /metrics (Prometheus) and /healthz\n"
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

static const char *botapi_version_shown = "?";

void cli_set_botapi_version(const char *version) {
  botapi_version_shown = version;
}

enum cli_result cli_parse(int argc, char **argv, struct config *cfg,
                          struct buf *err) {
  enum {
    OPT_TOKEN_FILE = 1000, OPT_API_ROOT, OPT_NO_WATCH, OPT_DRAIN,
    OPT_CPU, OPT_LOG_LEVEL, OPT_LOG_FORMAT, OPT_CHECK, OPT_MEMORY,
    OPT_UPDATE_MEMORY, OPT_TRACE, OPT_SANDBOX, OPT_SCRIPT, OPT_JOURNAL,
    OPT_DEAD_LETTERS, OPT_WEBHOOK, OPT_LISTEN, OPT_WEBHOOK_SECRET_FILE,
    OPT_METRICS
  };
  static const struct option longopts[] = {
      {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
      {"api-root", required_argument, NULL, OPT_API_ROOT},
      {"no-watch", no_argument, NULL, OPT_NO_WATCH},
      {"drain-timeout", required_argument, NULL, OPT_DRAIN},
      {"cpu-budget", required_argument, NULL, OPT_CPU},
      {"memory-limit", required_argument, NULL, OPT_MEMORY},
      {"update-memory-limit", required_argument, NULL, OPT_UPDATE_MEMORY},
      {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
      {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
      {"check", no_argument, NULL, OPT_CHECK},
      {"trace", no_argument, NULL, OPT_TRACE},
      {"sandbox", no_argument, NULL, OPT_SANDBOX},
      {"script", required_argument, NULL, OPT_SCRIPT},
      {"journal", required_argument, NULL, OPT_JOURNAL},
      {"dead-letters", no_argument, NULL, OPT_DEAD_LETTERS},
      {"webhook", required_argument, NULL, OPT_WEBHOOK},
      {"listen", required_argument, NULL, OPT_LISTEN},
      {"webhook-secret-file", required_argument, NULL,
       OPT_WEBHOOK_SECRET_FILE},
      {"metrics", required_argument, NULL, OPT_METRICS},
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
  cfg->memory_limit_mb = 1024;
  cfg->update_memory_limit_mb = 256;
  cfg->log_level = LOG_INFO;
  cfg->log_format = LOG_FORMAT_TEXT;
  const char *token_file = NULL;
  const char *api_root = getenv("TGHOST_API_ROOT");
  bool api_root_option = false;
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
  while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
    double secs;
    switch (c) {
      case 'h':
        fputs(usage, stdout);
        return CLI_EXIT_OK;
      case 'V':
        printf("tghost %s (Telegram Bot API %s; %s, %s, libevent %s)\n",
               TGHOST_VERSION, botapi_version_shown, LUA_RELEASE,
               curl_version(), event_get_version());
        return CLI_EXIT_OK;
      case OPT_TOKEN_FILE: token_file = optarg; break;
      case OPT_API_ROOT: api_root = optarg; api_root_option = true; break;
      case OPT_NO_WATCH: cfg->watch = false; break;
      case OPT_CHECK: cfg->check = true; break;
      case OPT_TRACE: cfg->trace = true; break;
      case OPT_SANDBOX: cfg->sandbox = true; break;
      case OPT_JOURNAL:
        free(cfg->journal);
        cfg->journal = *optarg ? xstrdup(optarg) : NULL;
        break;
      case OPT_DEAD_LETTERS: cfg->dead_letters = true; break;
      case OPT_WEBHOOK: set_string(&cfg->webhook_url, optarg); break;
      case OPT_LISTEN: set_string(&cfg->webhook_listen, optarg); break;
      case OPT_WEBHOOK_SECRET_FILE:
        set_string(&cfg->webhook_secret_file, optarg);
        break;
      case OPT_METRICS: set_string(&cfg->metrics_addr, optarg); break;
      case OPT_SCRIPT:
        free(cfg->sandbox_script);
        cfg->sandbox_script = xstrdup(optarg);
        break;
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
      case OPT_MEMORY:
      case OPT_UPDATE_MEMORY: {
        long mb;
        if (parse_megabytes(optarg, &mb) != 0) {
          buf_printf(err, "--%s needs a whole number of megabytes (1 or "
                     "more, 0 for no limit), not '%s'",
                     c == OPT_MEMORY ? "memory-limit" : "update-memory-limit",
                     optarg);
          return CLI_ERROR;
        }
        if (c == OPT_MEMORY) cfg->memory_limit_mb = mb;
        else cfg->update_memory_limit_mb = mb;
        break;
      }
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
  if (cfg->dead_letters) {
    if (!cfg->journal) {
      buf_append_str(err, "--dead-letters lists a journal's dead letters: "
                          "give --journal FILE");
      return CLI_ERROR;
    }
    return CLI_RUN;   /* no script needed */
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
  if (cfg->sandbox && (api_root_option || cfg->check)) {
    buf_printf(err, "--sandbox runs its own Bot API: it cannot be combined "
               "with %s", cfg->check ? "--check" : "--api-root");
    return CLI_ERROR;
  }
  cfg->script = xstrdup(argv[optind]);
  cfg->api_root = xstrdup(api_root && *api_root ? api_root
                                                : "https://api.telegram.org");
  if (check_api_root(cfg->api_root, err) != 0) return CLI_ERROR;
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
  free(cfg->sandbox_script);
  free(cfg->journal);
  free(cfg->api_root);
  free(cfg->webhook_url);
  free(cfg->webhook_listen);
  free(cfg->webhook_secret_file);
  free(cfg->metrics_addr);
  if (cfg->token) {
    memset(cfg->token, 0, strlen(cfg->token));
    free(cfg->token);
  }
}
