/* Lua 5.4 patterns with bounded work: see lpattern.h.
 *
 * The matcher is a backtracking recursion over (subject position, pattern
 * position), shaped like the one the manual's semantics imply: a single
 * item with '*' or '+' takes the longest run first and gives back one
 * character at a time, '-' takes the shortest first, '?' tries with and
 * then without, a capture is opened or closed and the rest of the pattern
 * matched after it. Where Lua would recurse, this recurses too, and counts
 * the depth the same way, because "pattern too complex" is part of the
 * behaviour a script sees. Errors in the pattern are found only when the
 * search reaches them, again as in Lua, so a pattern that is malformed
 * after a point no search gets to still matches.
 *
 * Failure (an error or an abort) is sticky in m->failure: the function
 * that notices it returns NULL, and every place that would go on trying
 * after a NULL (repetitions, '?', the search loop) looks at it first, so
 * no more work is done and the first message stands. */
#include "base/lpattern.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define ESC '%'

/* For the few helpers of the inner loop that the compiler would otherwise
 * call: inlined, the engine keeps up with Lua's (bench/patternbench.c). */
#define ALWAYS_INLINE inline __attribute__((always_inline))

/* Records a failure and returns NULL, for `return fail(...)`. */
static const char *fail(struct lpat_matcher *m, const char *message) {
  if (m->failure == LPAT_NOMATCH) {
    m->failure = LPAT_ERROR;
    snprintf(m->error, sizeof m->error, "%s", message);
  }
  return NULL;
}

/* Called when the step counter runs out (extra: steps charged beyond it). */
static bool ask_abort(struct lpat_matcher *m, size_t extra) {
  m->steps_done += (LPAT_CHECK_EVERY - m->until_check) + extra;
  m->until_check = LPAT_CHECK_EVERY;
  if (m->should_abort && m->should_abort(m->abort_ud)) {
    if (m->failure == LPAT_NOMATCH) m->failure = LPAT_ABORTED;
    return false;
  }
  return true;
}

/* Counts n steps; false when the search must stop. */
static inline bool charge(struct lpat_matcher *m, size_t n) {
  if (n < m->until_check) {
    m->until_check -= (unsigned)n;
    return true;
  }
  return ask_abort(m, n);
}

static inline bool tick(struct lpat_matcher *m) {
  if (--m->until_check != 0) return true;
  return ask_abort(m, 0);
}

/* Is byte c in the class letter cl stands for after a '%'? An upper-case
 * class letter is the complement; any other character stands for itself.
 * (Spelled out, not through tolower: this is the inner loop of most
 * patterns.) */
static ALWAYS_INLINE bool in_class(int c, int cl) {
  switch (cl) {
    case 'a': return isalpha(c) != 0;
    case 'A': return !isalpha(c);
    case 'c': return iscntrl(c) != 0;
    case 'C': return !iscntrl(c);
    case 'd': return isdigit(c) != 0;
    case 'D': return !isdigit(c);
    case 'g': return isgraph(c) != 0;
    case 'G': return !isgraph(c);
    case 'l': return islower(c) != 0;
    case 'L': return !islower(c);
    case 'p': return ispunct(c) != 0;
    case 'P': return !ispunct(c);
    case 's': return isspace(c) != 0;
    case 'S': return !isspace(c);
    case 'u': return isupper(c) != 0;
    case 'U': return !isupper(c);
    case 'w': return isalnum(c) != 0;
    case 'W': return !isalnum(c);
    case 'x': return isxdigit(c) != 0;
    case 'X': return !isxdigit(c);
    case 'z': return c == 0;           /* gone from the manual, kept by 5.4 */
    case 'Z': return c != 0;
    default: return cl == c;
  }
}

/* Is byte c in the set [...] that opens at `open` and closes at `close`
 * (its ']')? Inside: %x classes and escapes, ranges a-z, single bytes; a
 * '^' first negates. */
static bool in_set(int c, const char *open, const char *close) {
  const char *p = open + 1;
  bool found = true;             /* what a member means */
  if (*p == '^') {
    found = false;
    p++;
  }
  for (; p < close; p++) {
    if (*p == ESC) {
      p++;
      if (in_class(c, (unsigned char)*p)) return found;
    } else if (p + 2 < close && p[1] == '-') {
      if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2]) return found;
      p += 2;
    } else if ((unsigned char)*p == c) {
      return found;
    }
  }
  return !found;
}

/* The end of the single-character class at p (a byte, '.', %x, or a set):
 * where its optional quantifier would be. NULL on a malformed one. */
static ALWAYS_INLINE const char *item_end(struct lpat_matcher *m,
                                          const char *p) {
  const char *end = m->pat_end;
  char first = *p++;
  if (first == ESC) {
    if (p == end) return fail(m, "malformed pattern (ends with '%')");
    return p + 1;
  }
  if (first != '[') return p;
  if (p < end && *p == '^') p++;
  /* The first member is taken before looking for ']', so "[]]" is the set
   * of ']'; an escaped byte never closes the set. */
  do {
    if (p == end) return fail(m, "malformed pattern (missing ']')");
    if (*p++ == ESC && p < end) p++;
  } while (p == end || *p != ']');
  return p + 1;
}

/* Does the subject byte at s match the item [p, ep)? */
static inline bool item_matches(const struct lpat_matcher *m, const char *s,
                                const char *p, const char *ep) {
  if (s >= m->src_end) return false;
  int c = (unsigned char)*s;
  switch (*p) {
    case '.': return true;
    case ESC: return in_class(c, (unsigned char)p[1]);
    case '[': return in_set(c, p, ep - 1);
    default: return (unsigned char)*p == c;
  }
}

static const char *match(struct lpat_matcher *m, const char *s,
                         const char *p);

/* %bxy at p (p points at x): a balanced run from x to its matching y. */
static const char *match_balance(struct lpat_matcher *m, const char *s,
                                 const char *p) {
  if (p + 1 >= m->pat_end)
    return fail(m, "malformed pattern (missing arguments to '%b')");
  if (s >= m->src_end || *s != p[0]) return NULL;
  char open = p[0], close = p[1];
  int depth = 1;
  const char *from = s;
  while (++s < m->src_end) {
    if (*s == close) {
      if (--depth == 0) break;
    } else if (*s == open) {
      depth++;
    }
  }
  if (!charge(m, (size_t)(s - from))) return NULL;
  return s < m->src_end ? s + 1 : NULL;
}

/* %1-%9 (and the invalid %0): the text of an earlier, closed capture. */
static const char *match_backref(struct lpat_matcher *m, const char *s,
                                 int digit) {
  int i = digit - '1';
  if (i < 0 || i >= m->ncaptures ||
      m->captures[i].len == LPAT_CAP_UNFINISHED) {
    char msg[48];
    snprintf(msg, sizeof msg, "invalid capture index %%%d", i + 1);
    return fail(m, msg);
  }
  /* A position capture has no text: nothing matches it. */
  if (m->captures[i].len == LPAT_CAP_POSITION) return NULL;
  size_t len = (size_t)m->captures[i].len;
  if ((size_t)(m->src_end - s) < len) return NULL;
  if (!charge(m, len)) return NULL;
  if (memcmp(m->src + m->captures[i].start, s, len) != 0) return NULL;
  return s + len;
}

static const char *open_capture(struct lpat_matcher *m, const char *s,
                                const char *p, ptrdiff_t kind) {
  int n = m->ncaptures;
  if (n >= LPAT_MAX_CAPTURES) return fail(m, "too many captures");
  m->captures[n].start = (size_t)(s - m->src);
  m->captures[n].len = kind;
  m->ncaptures = n + 1;
  const char *r = match(m, s, p);
  if (!r) m->ncaptures--;
  return r;
}

/* ')' closes the innermost capture that is still open. */
static const char *close_capture(struct lpat_matcher *m, const char *s,
                                 const char *p) {
  int i = m->ncaptures - 1;
  while (i >= 0 && m->captures[i].len != LPAT_CAP_UNFINISHED) i--;
  if (i < 0) return fail(m, "invalid pattern capture");
  m->captures[i].len = s - (m->src + m->captures[i].start);
  const char *r = match(m, s, p);
  if (!r) m->captures[i].len = LPAT_CAP_UNFINISHED;
  return r;
}

/* item* (and item+ after its first byte): the longest run first. */
static const char *repeat_longest(struct lpat_matcher *m, const char *s,
                                  const char *p, const char *ep) {
  size_t n = 0;
  while (item_matches(m, s + n, p, ep)) n++;
  if (!charge(m, n)) return NULL;
  for (;;) {
    const char *r = match(m, s + n, ep + 1);
    if (r || m->failure) return r;
    if (n-- == 0) return NULL;
  }
}

/* item-: the shortest run first. */
static const char *repeat_shortest(struct lpat_matcher *m, const char *s,
                                   const char *p, const char *ep) {
  for (;;) {
    const char *r = match(m, s, ep + 1);
    if (r || m->failure) return r;
    if (!item_matches(m, s, p, ep)) return NULL;
    s++;
  }
}

/* Matches the pattern from p at subject position s: the end of the match,
 * or NULL. Tail positions loop instead of recursing, as Lua's does, so
 * the depth limit falls where Lua's does. */
static const char *match(struct lpat_matcher *m, const char *s,
                         const char *p) {
  if (m->depth_left == 0) return fail(m, "pattern too complex");
  m->depth_left--;
  const char *pend = m->pat_end;
  for (;;) {
    if (!tick(m)) {
      s = NULL;
      break;
    }
    if (p == pend) break;
    switch (*p) {
      case '(':
        if (p + 1 < pend && p[1] == ')')
          s = open_capture(m, s, p + 2, LPAT_CAP_POSITION);
        else
          s = open_capture(m, s, p + 1, LPAT_CAP_UNFINISHED);
        goto done;
      case ')':
        s = close_capture(m, s, p + 1);
        goto done;
      case '$':
        if (p + 1 == pend) {             /* an anchor only at the very end */
          if (s != m->src_end) s = NULL;
          goto done;
        }
        break;
      case ESC:
        if (p + 1 == pend) break;        /* item_end reports it */
        switch (p[1]) {
          case 'b':
            s = match_balance(m, s, p + 2);
            if (!s) goto done;
            p += 4;
            continue;
          case 'f': {
            const char *set = p + 2;
            if (set == pend || *set != '[') {
              s = fail(m, "missing '[' after '%f' in pattern");
              goto done;
            }
            const char *ep = item_end(m, set);
            if (!ep) {
              s = NULL;
              goto done;
            }
            int before = s == m->src ? 0 : (unsigned char)s[-1];
            int here = s < m->src_end ? (unsigned char)*s : 0;
            if (!in_set(before, set, ep - 1) && in_set(here, set, ep - 1)) {
              p = ep;
              continue;
            }
            s = NULL;
            goto done;
          }
          case '0': case '1': case '2': case '3': case '4':
          case '5': case '6': case '7': case '8': case '9':
            s = match_backref(m, s, p[1]);
            if (!s) goto done;
            p += 2;
            continue;
          default:
            break;
        }
        break;
      default:
        break;
    }
    /* A single-character item and its optional quantifier. */
    const char *ep = item_end(m, p);
    if (!ep) {
      s = NULL;
      goto done;
    }
    char q = ep < pend ? *ep : '\0';
    if (!item_matches(m, s, p, ep)) {
      if (q == '*' || q == '?' || q == '-') {   /* zero times will do */
        p = ep + 1;
        continue;
      }
      s = NULL;
      goto done;
    }
    switch (q) {
      case '?': {
        const char *r = match(m, s + 1, ep + 1);
        if (r || m->failure) {
          s = r;
          goto done;
        }
        p = ep + 1;
        continue;
      }
      case '+':
        s = repeat_longest(m, s + 1, p, ep);
        goto done;
      case '*':
        s = repeat_longest(m, s, p, ep);
        goto done;
      case '-':
        s = repeat_shortest(m, s, p, ep);
        goto done;
      default:
        s++;
        p = ep;
        continue;
    }
  }
done:
  m->depth_left++;
  return s;
}

void lpat_init(struct lpat_matcher *m, const char *subject, size_t len,
               const char *pattern, size_t plen, lpat_abort_fn should_abort,
               void *abort_ud) {
  m->src = subject;
  m->src_end = subject + len;
  m->pat = pattern;
  m->pat_end = pattern + plen;
  m->should_abort = should_abort;
  m->abort_ud = abort_ud;
  m->ncaptures = 0;
  m->error[0] = '\0';
  m->steps_done = 0;
  m->failure = LPAT_NOMATCH;
  m->depth_left = LPAT_MAX_DEPTH;
  m->until_check = LPAT_CHECK_EVERY;
}

enum lpat_result lpat_search(struct lpat_matcher *m, size_t from,
                             bool anchored, size_t avoid_end, size_t *start,
                             size_t *end) {
  size_t len = (size_t)(m->src_end - m->src);
  for (size_t at = from; at <= len && !m->failure; at++) {
    m->ncaptures = 0;
    m->depth_left = LPAT_MAX_DEPTH;
    const char *e = match(m, m->src + at, m->pat);
    if (e && (size_t)(e - m->src) != avoid_end) {
      *start = at;
      *end = (size_t)(e - m->src);
      return LPAT_MATCH;
    }
    if (anchored) break;
  }
  return m->failure ? m->failure : LPAT_NOMATCH;
}

uint64_t lpat_steps(const struct lpat_matcher *m) {
  return m->steps_done + (LPAT_CHECK_EVERY - m->until_check);
}

bool lpat_is_plain(const char *pattern, size_t plen) {
  for (size_t i = 0; i < plen; i++) {
    switch (pattern[i]) {
      case '^': case '$': case '*': case '+': case '?':
      case '.': case '(': case '[': case '%': case '-':
        return false;
      default:
        break;
    }
  }
  return true;
}
