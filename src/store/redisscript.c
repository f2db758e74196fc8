#include "store/redisscript.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct script_load {
  struct redis_scripts *s;
  size_t which;
};

static void on_script_loaded(struct redisconn *c, const redisReply *rep,
                             const char *error, void *ud) {
  struct script_load *l = ud;
  if (rep && rep->type == REDIS_REPLY_STRING && rep->len == 40)
    memcpy(l->s->sha[l->which], rep->str, 41);
  free(l);
}

/* Each new connection learns the scripts' SHAs. */
static void on_up(struct redisconn *c, void *ud) {
  struct redis_scripts *s = ud;
  for (size_t i = 0; i < s->n; i++) {
    struct script_load *l = xcalloc(1, sizeof *l);
    l->s = s;
    l->which = i;
    const char *argv[] = {"SCRIPT", "LOAD", s->text[i]};
    redisconn_command(c, 3, argv, NULL, on_script_loaded, l);
  }
}

void redis_scripts_init(struct redis_scripts *s, struct redisconn *c,
                        size_t n, const char *const *text) {
  memset(s, 0, sizeof *s);
  s->conn = c;
  s->n = n < REDIS_SCRIPTS_MAX ? n : REDIS_SCRIPTS_MAX;
  s->text = text;
  redisconn_watch(c, on_up, NULL, s);
}

void redis_scripts_eval(struct redis_scripts *s, size_t which, bool use_sha,
                        int nkeys, int argc, const char *const *argv,
                        const size_t *lens, redisconn_reply_fn done,
                        void *ud) {
  int total = argc + 3;
  const char **full = xcalloc((size_t)total, sizeof *full);
  size_t *full_lens = xcalloc((size_t)total, sizeof *full_lens);
  char nk[16];
  snprintf(nk, sizeof nk, "%d", nkeys);
  bool sha = use_sha && s->sha[which][0];
  full[0] = sha ? "EVALSHA" : "EVAL";
  full[1] = sha ? s->sha[which] : s->text[which];
  full[2] = nk;
  for (int i = 0; i < 3; i++) full_lens[i] = strlen(full[i]);
  for (int i = 0; i < argc; i++) {
    full[3 + i] = argv[i];
    full_lens[3 + i] = lens ? lens[i] : strlen(argv[i]);
  }
  redisconn_command(s->conn, total, full, full_lens, done, ud);
  free(full);
  free(full_lens);
}

bool redis_reply_noscript(const redisReply *rep) {
  return rep && rep->type == REDIS_REPLY_ERROR &&
         strncmp(rep->str, "NOSCRIPT", 8) == 0;
}
