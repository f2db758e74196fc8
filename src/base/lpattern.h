/* Lua 5.4 patterns (the reference manual, section 6.4.1), matched with a
 * bound on the work done.
 *
 * Lua's own matcher backtracks without limit inside one C call, where no
 * Lua hook can reach it: string.find(string.rep("a", 3000), ".-.-.-b")
 * runs for minutes, and bot.hears patterns run on text users send. This
 * engine matches exactly as Lua 5.4.4 does (the same matches, captures and
 * errors, raised at the same moment of the same search, including the
 * "pattern too complex" depth limit), and counts its steps: every
 * LPAT_CHECK_EVERY steps it asks the caller's abort callback whether to go
 * on. When the callback says stop, the search ends with LPAT_ABORTED.
 *
 * A step is one pattern item tried at one subject position, one iteration
 * of a repetition, or one subject byte scanned by %b or a back-reference,
 * so the time between two calls of the callback is bounded by a few
 * thousand cheap operations, whatever the pattern and the text.
 *
 * Pure C: no Lua, no loop, no allocation. src/luastring.c puts it behind
 * string.find/match/gmatch/gsub. Layer: base. */
#ifndef TGHOST_LPATTERN_H
#define TGHOST_LPATTERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LPAT_MAX_CAPTURES 32   /* Lua's LUA_MAXCAPTURES */
#define LPAT_MAX_DEPTH 200     /* Lua's MAXCCALLS: nested matches allowed */
#define LPAT_CHECK_EVERY 4096  /* steps between two abort-callback calls */

/* A capture's len while it is open, and for a position capture "()". */
#define LPAT_CAP_UNFINISHED (-1)
#define LPAT_CAP_POSITION (-2)

/* lpat_search's avoid_end when any match end is fine. */
#define LPAT_ANY_END SIZE_MAX

enum lpat_result {
  LPAT_NOMATCH,
  LPAT_MATCH,
  LPAT_ERROR,     /* a malformed pattern; error says what, as Lua would */
  LPAT_ABORTED,   /* the abort callback asked to stop */
};

/* Called every LPAT_CHECK_EVERY steps; true stops the search. */
typedef bool (*lpat_abort_fn)(void *ud);

struct lpat_capture {
  size_t start;     /* offset into the subject */
  ptrdiff_t len;    /* its length, or LPAT_CAP_UNFINISHED/_POSITION */
};

/* One subject and one pattern. Results are read from the fields below
 * after lpat_search; the fields marked internal are the engine's. */
struct lpat_matcher {
  const char *src, *src_end;
  const char *pat, *pat_end;
  lpat_abort_fn should_abort;
  void *abort_ud;

  /* After LPAT_MATCH: the captures of the match, in pattern order. */
  int ncaptures;
  struct lpat_capture captures[LPAT_MAX_CAPTURES];
  /* After LPAT_ERROR: Lua's message ("malformed pattern (missing ']')"). */
  char error[64];
  /* Internal. */
  enum lpat_result failure;   /* LPAT_ERROR/ABORTED once failed, sticky */
  int depth_left;
  unsigned until_check;       /* steps left before the next abort check */
  uint64_t steps_done;        /* steps counted at the last check */
};

/* Prepares m for matching pattern (plen bytes, without a leading '^'
 * anchor: the caller strips it, as Lua's find/match/gsub do and gmatch
 * does not) against subject (len bytes). Both must outlive m's use.
 * should_abort may be NULL (no bound). */
void lpat_init(struct lpat_matcher *m, const char *subject, size_t len,
               const char *pattern, size_t plen, lpat_abort_fn should_abort,
               void *abort_ud);

/* Finds the first match that starts at a position in [from, len] (only at
 * from when anchored) and does not end at avoid_end (gsub and gmatch pass
 * the end of their previous match: no empty match right after it). On
 * LPAT_MATCH, *start and *end are the match's offsets and the captures
 * are set. A match of an empty pattern at len counts, as in Lua.
 * LPAT_ERROR and LPAT_ABORTED are final: later calls return them again. */
enum lpat_result lpat_search(struct lpat_matcher *m, size_t from,
                             bool anchored, size_t avoid_end, size_t *start,
                             size_t *end);

/* Steps counted since lpat_init (for measurements and tests). */
uint64_t lpat_steps(const struct lpat_matcher *m);

/* True when the pattern has none of the characters that make it a
 * pattern (^$*+?.([%-): string.find may then search for it as plain text,
 * as Lua does. */
bool lpat_is_plain(const char *pattern, size_t plen);

#endif
