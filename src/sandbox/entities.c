#include "sandbox/entities.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/json.h"

/* Entity kinds as Telegram's server names them in its errors ("Can't find
 * end of Bold entity"), with the Bot API's type name and the order among
 * entities of one range (the server's type priority: lower first). */
enum kind {
  K_BOLD, K_ITALIC, K_UNDERLINE, K_STRIKETHROUGH, K_SPOILER, K_CODE, K_PRE,
  K_PRE_CODE, K_TEXT_URL, K_MENTION_NAME, K_CUSTOM_EMOJI, K_BLOCKQUOTE,
  K_EXPANDABLE_BLOCKQUOTE,
};

static const struct {
  const char *server, *api;
  int priority;
} kinds[] = {
    [K_BOLD] = {"Bold", "bold", 90},
    [K_ITALIC] = {"Italic", "italic", 91},
    [K_UNDERLINE] = {"Underline", "underline", 92},
    [K_STRIKETHROUGH] = {"Strikethrough", "strikethrough", 93},
    [K_SPOILER] = {"Spoiler", "spoiler", 94},
    [K_CODE] = {"Code", "code", 20},
    [K_PRE] = {"Pre", "pre", 11},
    [K_PRE_CODE] = {"PreCode", "pre", 10},
    [K_TEXT_URL] = {"TextUrl", "text_link", 49},
    [K_MENTION_NAME] = {"MentionName", "text_mention", 49},
    [K_CUSTOM_EMOJI] = {"CustomEmoji", "custom_emoji", 99},
    [K_BLOCKQUOTE] = {"BlockQuote", "blockquote", 0},
    [K_EXPANDABLE_BLOCKQUOTE] = {"ExpandableBlockQuote", "expandable_blockquote", 0},
};

/* An entity while parsing. */
struct pent {
  enum kind kind;
  int32_t offset, length;
  char *arg;          /* url, language or custom emoji id */
  int64_t user_id;
};

struct plist {
  struct pent *v;
  size_t n, cap;
};

static void padd(struct plist *l, enum kind k, int32_t offset, int32_t length,
                 char *arg, int64_t user_id) {
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 8;
    l->v = xrealloc(l->v, l->cap * sizeof *l->v);
  }
  l->v[l->n++] = (struct pent){k, offset, length, arg, user_id};
}

static void pfree(struct plist *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i].arg);
  free(l->v);
}

/* A byte that starts a character adds one UTF-16 unit, two for a
 * character outside the BMP (a 4-byte sequence). */
static int32_t units_of(unsigned char c) {
  if ((c & 0xC0) == 0x80) return 0;
  return c >= 0xF0 ? 2 : 1;
}

size_t entities_utf16_length(const char *s, size_t len) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++) n += (size_t)units_of((unsigned char)s[i]);
  return n;
}

void entities_byte_range(const char *s, size_t len, int32_t offset,
                         int32_t length, size_t *begin, size_t *end) {
  int32_t u = 0;
  size_t i = 0;
  *begin = *end = len;
  for (; i < len; i++) {
    int32_t w = units_of((unsigned char)s[i]);
    if (w == 0) continue;
    if (u == offset && *begin == len) *begin = i;
    if (u == offset + length) {
      *end = i;
      return;
    }
    u += w;
  }
  if (u == offset && *begin == len) *begin = len;
}

bool entities_mode(const char *parse_mode, enum ent_mode *mode) {
  if (!parse_mode || !*parse_mode) *mode = ENT_PLAIN;
  else if (strcasecmp(parse_mode, "HTML") == 0) *mode = ENT_HTML;
  else if (strcasecmp(parse_mode, "MarkdownV2") == 0) *mode = ENT_MARKDOWN_V2;
  else if (strcasecmp(parse_mode, "Markdown") == 0) *mode = ENT_MARKDOWN;
  else return false;
  return true;
}

/* --- links ----------------------------------------------------------------- */

/* A text_link's url as the server keeps it ("telegram.org" ->
 * "http://telegram.org/"), a text_mention's user id (tg://user?id=N), or
 * 0: not a link (the entity is dropped, as Telegram drops it). */
enum link { LINK_NONE, LINK_URL, LINK_USER };

static enum link check_link(const char *url, size_t len, struct buf *out,
                            int64_t *user_id) {
  static const char mention[] = "tg://user?id=";
  if (len > sizeof mention - 1 &&
      strncasecmp(url, mention, sizeof mention - 1) == 0) {
    const char *d = url + sizeof mention - 1;
    size_t dl = len - (sizeof mention - 1);
    int64_t v = 0;
    for (size_t i = 0; i < dl; i++) {
      if (!isdigit((unsigned char)d[i]) || v > (INT64_MAX - 9) / 10)
        return LINK_NONE;
      v = v * 10 + (d[i] - '0');
    }
    if (v <= 0) return LINK_NONE;
    *user_id = v;
    return LINK_USER;
  }
  while (len && isspace((unsigned char)*url)) url++, len--;
  while (len && isspace((unsigned char)url[len - 1])) len--;
  if (len == 0) return LINK_NONE;
  const char *colon = memchr(url, ':', len);
  size_t scheme_len = 0;
  if (colon) {
    scheme_len = (size_t)(colon - url);
    for (size_t i = 0; i < scheme_len; i++)
      if (!isalnum((unsigned char)url[i]) && url[i] != '+' && url[i] != '-' &&
          url[i] != '.')
        scheme_len = 0;
  }
  bool http = false;
  if (scheme_len && len > scheme_len + 2 && colon[1] == '/' && colon[2] == '/') {
    if (strncasecmp(url, "tg", scheme_len) == 0 && scheme_len == 2) {
      buf_append(out, url, len);     /* tg:// links are kept as written */
      return LINK_URL;
    }
    if (!(scheme_len == 4 && strncasecmp(url, "http", 4) == 0) &&
        !(scheme_len == 5 && strncasecmp(url, "https", 5) == 0) &&
        !(scheme_len == 3 && strncasecmp(url, "ton", 3) == 0))
      return LINK_NONE;
    http = true;
  }
  const char *host = url;
  size_t rest = len;
  if (http) {
    host = colon + 3;
    rest = len - (size_t)(host - url);
    buf_append(out, url, (size_t)(host - url));
  } else {
    buf_append_str(out, "http://");
  }
  size_t hl = 0;
  while (hl < rest && host[hl] != '/' && host[hl] != '?' && host[hl] != '#')
    hl++;
  /* A host: letters, digits, '-', '.', ':' (a port), or any non-ASCII;
   * with a dot in it, not at its ends. */
  bool dot = false;
  for (size_t i = 0; i < hl; i++) {
    unsigned char c = (unsigned char)host[i];
    if (c == '.') dot = true;
    else if (!(isalnum(c) || c == '-' || c == ':' || c >= 0x80 || c == '@'))
      return LINK_NONE;
  }
  if (!dot || hl == 0 || host[0] == '.' || host[hl - 1] == '.') return LINK_NONE;
  buf_append(out, host, hl);
  if (hl == rest || host[hl] != '/') buf_append_char(out, '/');
  buf_append(out, host + hl, rest - hl);
  return LINK_URL;
}

/* The id of a tg://emoji?id=N link, or -1 with err set. */
static int emoji_id(const char *url, size_t len, char **id, struct buf *err) {
  const char *colon = memchr(url, ':', len);
  if (!colon || colon - url != 2 || strncasecmp(url, "tg", 2) != 0) {
    buf_append_str(err, "Custom emoji URL must have scheme tg");
    return -1;
  }
  const char *p = colon + 1, *end = url + len;
  if (end - p >= 2 && p[0] == '/' && p[1] == '/') p += 2;
  const char *host = p;
  while (p < end && *p != '/' && *p != '?' && *p != '#') p++;
  if (p - host != 5 || strncasecmp(host, "emoji", 5) != 0) {
    buf_append_str(err, "Custom emoji URL must have host \"emoji\"");
    return -1;
  }
  while (p < end && *p != '?' && *p != '#') p++;
  const char *value = NULL;
  size_t vlen = 0;
  if (p < end && *p == '?') {
    p++;
    while (p < end && *p != '#') {
      const char *amp = p;
      while (amp < end && *amp != '&' && *amp != '#') amp++;
      if (amp - p > 3 && strncmp(p, "id=", 3) == 0) {
        value = p + 3;
        vlen = (size_t)(amp - p - 3);
      }
      p = amp < end && *amp == '&' ? amp + 1 : amp;
    }
  }
  if (!value) {
    buf_append_str(err, "Custom emoji URL must have an emoji identifier");
    return -1;
  }
  bool ok = vlen > 0 && vlen <= 19 && value[0] != '0';
  for (size_t i = 0; ok && i < vlen; i++) ok = isdigit((unsigned char)value[i]);
  if (ok) {
    errno = 0;
    char tmp[24];
    memcpy(tmp, value, vlen);
    tmp[vlen] = '\0';
    long long v = strtoll(tmp, NULL, 10);
    ok = errno == 0 && v > 0;
  }
  if (!ok) {
    buf_append_str(err, "Invalid custom emoji identifier specified");
    return -1;
  }
  *id = xstrndup(value, vlen);
  return 0;
}

/* --- MarkdownV2 ------------------------------------------------------------ */

struct open {
  enum kind kind;
  char *arg;
  int32_t offset;        /* UTF-16, in the result */
  size_t byte_offset;    /* in the source, for errors */
  size_t begin;          /* bytes of the result before it */
};

struct stack {
  struct open *v;
  size_t n, cap;
};

static void push(struct stack *s, struct open o) {
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 8;
    s->v = xrealloc(s->v, s->cap * sizeof *s->v);
  }
  s->v[s->n++] = o;
}

static void stack_free(struct stack *s) {
  for (size_t i = 0; i < s->n; i++) free(s->v[i].arg);
  free(s->v);
}

static int reserved(struct buf *err, char c) {
  buf_printf(err, "Character '%c' is reserved and must be escaped with the "
                  "preceding '\\'", c);
  return -1;
}

static int no_end(struct buf *err, const struct open *o) {
  buf_printf(err, "Can't find end of %s entity at byte offset %zu",
             kinds[o->kind].server, o->byte_offset);
  return -1;
}

/* A link's URL in MarkdownV2: up to ')', with '\' escapes. */
static bool read_url(const char *s, size_t n, size_t *i, struct buf *url) {
  while (*i < n && s[*i] != ')') {
    if (s[*i] == '\\' && *i + 1 < n && s[*i + 1] > 0 && s[*i + 1] <= 126) {
      buf_append_char(url, s[*i + 1]);
      *i += 2;
      continue;
    }
    buf_append_char(url, s[(*i)++]);
  }
  return *i < n;
}

static int parse_markdown_v2(const char *s, size_t n, struct buf *res,
                             struct plist *out, struct buf *err) {
#define AT(k) ((k) < n ? s[k] : '\0')
  struct stack st = {0};
  int32_t u = 0;
  bool have_quote = false, can_start_quote = true;
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\\' && AT(i + 1) > 0 && AT(i + 1) <= 126) {
      i++;
      u += 1;
      buf_append_char(res, s[i]);
      if (s[i] != '\r') can_start_quote = s[i] == '\n';
      continue;
    }
    const char *special = "_*[]()~`>#+-=|{}.!\n";
    if (st.n) {
      enum kind top = st.v[st.n - 1].kind;
      if (top == K_CODE || top == K_PRE || top == K_PRE_CODE) special = "`";
    }
    if (c == '\0' || !strchr(special, c)) {
      int32_t w = units_of(c);
      if (w) {
        u += w;
        if (c != '\r') can_start_quote = false;
      }
      buf_append_char(res, (char)c);
      continue;
    }
    bool is_end = false;
    if (st.n) {
      if (have_quote && c == '\n' && (i + 1 == n || s[i + 1] != '>')) {
        is_end = true;
      } else {
        switch (st.v[st.n - 1].kind) {
          case K_BOLD: is_end = c == '*'; break;
          case K_ITALIC: is_end = c == '_' && AT(i + 1) != '_'; break;
          case K_CODE: is_end = c == '`'; break;
          case K_PRE:
          case K_PRE_CODE:
            is_end = c == '`' && AT(i + 1) == '`' && AT(i + 2) == '`';
            break;
          case K_TEXT_URL: is_end = c == ']'; break;
          case K_UNDERLINE: is_end = c == '_' && AT(i + 1) == '_'; break;
          case K_STRIKETHROUGH: is_end = c == '~'; break;
          case K_SPOILER: is_end = c == '|' && AT(i + 1) == '|'; break;
          case K_CUSTOM_EMOJI: is_end = c == ']'; break;
          default: is_end = false; break;
        }
      }
    }
    if (!is_end) {
      enum kind k;
      char *arg = NULL;
      size_t byte_offset = i;
      switch (c) {
        case '_':
          if (AT(i + 1) == '_') {
            k = K_UNDERLINE;
            i++;
          } else {
            k = K_ITALIC;
          }
          break;
        case '*': k = K_BOLD; break;
        case '~': k = K_STRIKETHROUGH; break;
        case '|':
          if (AT(i + 1) != '|') {
            rc = reserved(err, (char)c);
            continue;
          }
          i++;
          k = K_SPOILER;
          break;
        case '[': k = K_TEXT_URL; break;
        case '`':
          if (AT(i + 1) == '`' && AT(i + 2) == '`') {
            i += 3;
            k = K_PRE;
            size_t lang_end = i;
            while (lang_end < n && !isspace((unsigned char)s[lang_end]) &&
                   s[lang_end] != '`')
              lang_end++;
            if (i != lang_end && lang_end < n && s[lang_end] != '`') {
              k = K_PRE_CODE;
              arg = xstrndup(s + i, lang_end - i);
              i = lang_end;
            }
            /* One newline right after the opening is not part of it. */
            if (AT(i) == '\n' || AT(i) == '\r') {
              if ((AT(i + 1) == '\n' || AT(i + 1) == '\r') && s[i] != s[i + 1])
                i += 2;
              else
                i++;
            }
            i--;
          } else {
            k = K_CODE;
          }
          break;
        case '!':
          if (AT(i + 1) != '[') {
            rc = reserved(err, (char)c);
            continue;
          }
          i++;
          k = K_CUSTOM_EMOJI;
          break;
        case '\n':
          u += 1;
          buf_append_char(res, '\n');
          can_start_quote = true;
          continue;
        case '>':
          if (!can_start_quote) {
            rc = reserved(err, (char)c);
            continue;
          }
          if (have_quote) continue;   /* the next line of the quote */
          k = K_BLOCKQUOTE;
          have_quote = true;
          break;
        default:
          rc = reserved(err, (char)c);
          continue;
      }
      push(&st, (struct open){k, arg, u, byte_offset, res->len});
      continue;
    }
    /* The end of the innermost entity. */
    struct open *top = &st.v[st.n - 1];
    enum kind k = top->kind;
    if (c == '\n' && k != K_BLOCKQUOTE) {
      /* Only "||" right before the end of a quote's line may stand there:
       * it makes the quote expandable. */
      bool mark = k == K_SPOILER &&
                  (top->byte_offset + 2 == i ||
                   (top->byte_offset + 3 == i && res->len &&
                    res->data[res->len - 1] == '\r'));
      if (!mark) {
        rc = no_end(err, top);
        continue;
      }
      free(top->arg);
      st.n--;
      top = &st.v[st.n - 1];
      if (top->kind != K_BLOCKQUOTE) {
        rc = no_end(err, top);
        continue;
      }
      k = K_EXPANDABLE_BLOCKQUOTE;
    }
    char *arg = top->arg;
    top->arg = NULL;
    int64_t user_id = 0;
    bool skip = u == top->offset;
    switch (k) {
      case K_UNDERLINE:
      case K_SPOILER: i++; break;
      case K_PRE:
      case K_PRE_CODE: i += 2; break;
      case K_TEXT_URL: {
        struct buf url = BUF_INIT, checked = BUF_INIT;
        if (AT(i + 1) != '(') {
          buf_append(&url, res->data + top->begin, res->len - top->begin);
        } else {
          i += 2;
          size_t url_begin = i;
          if (!read_url(s, n, &i, &url)) {
            buf_printf(err, "Can't find end of a URL at byte offset %zu",
                       url_begin);
            buf_free(&url);
            rc = -1;
            continue;
          }
        }
        enum link l = check_link(url.data ? url.data : "", url.len, &checked,
                                 &user_id);
        if (l == LINK_USER) k = K_MENTION_NAME;
        if (l == LINK_NONE) skip = true;
        else if (l == LINK_URL) arg = buf_steal(&checked, NULL);
        buf_free(&url);
        buf_free(&checked);
        break;
      }
      case K_CUSTOM_EMOJI: {
        if (AT(i + 1) != '(') {
          buf_append_str(err, "Custom emoji entity must contain a tg://emoji URL");
          rc = -1;
          continue;
        }
        i += 2;
        size_t url_begin = i;
        struct buf url = BUF_INIT;
        if (!read_url(s, n, &i, &url)) {
          buf_printf(err, "Can't find end of a custom emoji URL at byte offset %zu",
                     url_begin);
          buf_free(&url);
          rc = -1;
          continue;
        }
        rc = emoji_id(url.data ? url.data : "", url.len, &arg, err);
        buf_free(&url);
        break;
      }
      case K_BLOCKQUOTE:
      case K_EXPANDABLE_BLOCKQUOTE:
        have_quote = false;
        buf_append_char(res, s[i]);
        can_start_quote = true;
        u += 1;
        skip = false;
        break;
      default: break;
    }
    if (rc == 0 && !skip) padd(out, k, top->offset, u - top->offset, arg, user_id);
    else free(arg);
    st.n--;
  }
  if (rc == 0 && have_quote && st.n) {
    enum kind k = K_BLOCKQUOTE;
    struct open *top = &st.v[st.n - 1];
    if (top->kind == K_SPOILER && top->byte_offset + 2 == n && st.n > 1) {
      free(top->arg);
      st.n--;
      top = &st.v[st.n - 1];
      k = K_EXPANDABLE_BLOCKQUOTE;
    }
    if (top->kind == K_BLOCKQUOTE) {
      if (u != top->offset) padd(out, k, top->offset, u - top->offset, NULL, 0);
      free(top->arg);
      st.n--;
    }
  }
  if (rc == 0 && st.n) rc = no_end(err, &st.v[st.n - 1]);
  stack_free(&st);
  return rc;
#undef AT
}

/* --- legacy Markdown ----------------------------------------------------- */

static int parse_markdown(const char *s, size_t n, struct buf *res,
                          struct plist *out, struct buf *err) {
#define AT(k) ((k) < n ? s[k] : '\0')
  int32_t u = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\\' && (AT(i + 1) == '_' || AT(i + 1) == '*' || AT(i + 1) == '`' ||
                      AT(i + 1) == '[')) {
      i++;
      buf_append_char(res, s[i]);
      u++;
      continue;
    }
    if (c != '_' && c != '*' && c != '`' && c != '[') {
      u += units_of(c);
      buf_append_char(res, (char)c);
      continue;
    }
    size_t begin = i;
    char end_char = c == '[' ? ']' : (char)c;
    bool pre = false;
    char *language = NULL;
    i++;
    if (c == '`' && AT(i) == '`' && AT(i + 1) == '`') {
      i += 2;
      pre = true;
      size_t lang_end = i;
      while (lang_end < n && !isspace((unsigned char)s[lang_end]) &&
             s[lang_end] != '`')
        lang_end++;
      if (i != lang_end && lang_end < n && s[lang_end] != '`') {
        language = xstrndup(s + i, lang_end - i);
        i = lang_end;
      }
      if (AT(i) == '\n' || AT(i) == '\r') {
        if ((AT(i + 1) == '\n' || AT(i + 1) == '\r') && s[i] != s[i + 1]) i += 2;
        else i++;
      }
    }
    int32_t offset = u;
    size_t text_begin = res->len;
    while (i < n && (s[i] != end_char ||
                     (pre && !(AT(i + 1) == '`' && AT(i + 2) == '`')))) {
      u += units_of((unsigned char)s[i]);
      buf_append_char(res, s[i++]);
    }
    if (i >= n) {
      free(language);
      buf_printf(err, "Can't find end of the entity starting at byte offset %zu",
                 begin);
      return -1;
    }
    if (offset != u) {
      int32_t length = u - offset;
      if (c == '_') {
        padd(out, K_ITALIC, offset, length, NULL, 0);
      } else if (c == '*') {
        padd(out, K_BOLD, offset, length, NULL, 0);
      } else if (c == '[') {
        struct buf url = BUF_INIT, checked = BUF_INIT;
        if (AT(i + 1) != '(') {
          buf_append(&url, res->data + text_begin, res->len - text_begin);
        } else {
          i += 2;
          while (i < n && s[i] != ')') buf_append_char(&url, s[i++]);
        }
        int64_t user_id = 0;
        enum link l = check_link(url.data ? url.data : "", url.len, &checked,
                                 &user_id);
        if (l == LINK_USER) padd(out, K_MENTION_NAME, offset, length, NULL, user_id);
        else if (l == LINK_URL)
          padd(out, K_TEXT_URL, offset, length, buf_steal(&checked, NULL), 0);
        buf_free(&url);
        buf_free(&checked);
      } else if (pre) {
        padd(out, language ? K_PRE_CODE : K_PRE, offset, length, language, 0);
        language = NULL;
      } else {
        padd(out, K_CODE, offset, length, NULL, 0);
      }
    }
    free(language);
    if (pre) i += 2;
  }
  return 0;
#undef AT
}

/* --- HTML ---------------------------------------------------------------- */

static void append_utf8(struct buf *b, uint32_t cp) {
  if (cp < 0x80) {
    buf_append_char(b, (char)cp);
  } else if (cp < 0x800) {
    buf_append_char(b, (char)(0xC0 | (cp >> 6)));
    buf_append_char(b, (char)(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    buf_append_char(b, (char)(0xE0 | (cp >> 12)));
    buf_append_char(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
    buf_append_char(b, (char)(0x80 | (cp & 0x3F)));
  } else {
    buf_append_char(b, (char)(0xF0 | (cp >> 18)));
    buf_append_char(b, (char)(0x80 | ((cp >> 12) & 0x3F)));
    buf_append_char(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
    buf_append_char(b, (char)(0x80 | (cp & 0x3F)));
  }
}

/* An HTML entity at s[*i] ('&'): &lt; &gt; &amp; &quot; and numeric ones
 * (the ';' may be left out). Returns the code point and moves *i past
 * it, or 0: not one the API knows (the '&' is text). */
static uint32_t html_entity(const char *s, size_t n, size_t *i) {
  size_t j = *i + 1;
  uint32_t cp = 0;
  if (j < n && s[j] == '#') {
    j++;
    bool hex = j < n && (s[j] == 'x' || s[j] == 'X');
    if (hex) j++;
    size_t digits = 0;
    uint64_t v = 0;
    while (j < n && (hex ? isxdigit((unsigned char)s[j]) : isdigit((unsigned char)s[j]))) {
      int d = isdigit((unsigned char)s[j]) ? s[j] - '0'
                                           : (tolower((unsigned char)s[j]) - 'a' + 10);
      if (v <= 0x10FFFF) v = v * (hex ? 16 : 10) + (uint64_t)d;
      j++;
      digits++;
    }
    if (digits == 0 || v == 0 || v > 0x10FFFF) return 0;
    cp = (uint32_t)v;
  } else {
    size_t name = j;
    while (j < n && isalpha((unsigned char)s[j])) j++;
    size_t len = j - name;
    if (len == 2 && strncmp(s + name, "lt", 2) == 0) cp = '<';
    else if (len == 2 && strncmp(s + name, "gt", 2) == 0) cp = '>';
    else if (len == 3 && strncmp(s + name, "amp", 3) == 0) cp = '&';
    else if (len == 4 && strncmp(s + name, "quot", 4) == 0) cp = '"';
    else return 0;
  }
  if (j < n && s[j] == ';') j++;
  *i = j;
  return cp;
}

/* Appends HTML text, decoding entities; false on a lone surrogate. */
static bool html_text(const char *s, size_t n, struct buf *out, int32_t *u) {
  for (size_t i = 0; i < n;) {
    if (s[i] == '&') {
      size_t j = i;
      uint32_t cp = html_entity(s, n, &j);
      if (cp) {
        if (cp >= 0xD800 && cp <= 0xDFFF) return false;
        append_utf8(out, cp);
        if (u) *u += cp >= 0x10000 ? 2 : 1;
        i = j;
        continue;
      }
    }
    if (u) *u += units_of((unsigned char)s[i]);
    buf_append_char(out, s[i++]);
  }
  return true;
}

struct tag {
  char name[16];
  enum kind kind;
  char *arg;            /* href, language, emoji id */
  bool has_arg;
  int32_t offset;
  size_t begin;         /* result bytes before it */
};

static bool tag_char(char c) { return isalnum((unsigned char)c) || c == '-'; }

static const char *const supported_tags[] = {
    "a", "b", "strong", "i", "em", "s", "strike", "del", "u", "ins",
    "tg-spoiler", "tg-emoji", "span", "pre", "code", "blockquote", NULL};

static enum kind tag_kind(const char *name) {
  if (!strcmp(name, "b") || !strcmp(name, "strong")) return K_BOLD;
  if (!strcmp(name, "i") || !strcmp(name, "em")) return K_ITALIC;
  if (!strcmp(name, "s") || !strcmp(name, "strike") || !strcmp(name, "del"))
    return K_STRIKETHROUGH;
  if (!strcmp(name, "u") || !strcmp(name, "ins")) return K_UNDERLINE;
  if (!strcmp(name, "tg-spoiler") || !strcmp(name, "span")) return K_SPOILER;
  if (!strcmp(name, "tg-emoji")) return K_CUSTOM_EMOJI;
  if (!strcmp(name, "a")) return K_TEXT_URL;
  if (!strcmp(name, "pre")) return K_PRE;
  if (!strcmp(name, "code")) return K_CODE;
  return K_BLOCKQUOTE;
}

static int parse_html(const char *s, size_t n, struct buf *res,
                      struct plist *out, struct buf *err) {
  struct tag *tags = NULL;
  size_t ntags = 0, cap = 0;
  int32_t u = 0;
  int rc = 0;
  const char *surrogate =
      "Text contains invalid Unicode characters after decoding HTML entities, "
      "check for unmatched surrogate code units";
  for (size_t i = 0; i < n && rc == 0;) {
    if (s[i] == '&') {
      size_t j = i;
      uint32_t cp = html_entity(s, n, &j);
      if (cp) {
        if (cp >= 0xD800 && cp <= 0xDFFF) {
          buf_append_str(err, surrogate);
          rc = -1;
          break;
        }
        append_utf8(res, cp);
        u += cp >= 0x10000 ? 2 : 1;
        i = j;
        continue;
      }
    }
    if (s[i] != '<') {
      u += units_of((unsigned char)s[i]);
      buf_append_char(res, s[i++]);
      continue;
    }
    size_t begin = i;
    if (i + 1 < n && s[i + 1] == '/') {
      /* An end tag. */
      if (ntags == 0) {
        buf_printf(err, "Unexpected end tag at byte offset %zu", begin);
        rc = -1;
        break;
      }
      i += 2;
      size_t name = i;
      while (i < n && tag_char(s[i])) i++;
      char end_name[16] = "";
      size_t nl = i - name;
      for (size_t k = 0; k < nl && k + 1 < sizeof end_name; k++)
        end_name[k] = (char)tolower((unsigned char)s[name + k]);
      end_name[nl < sizeof end_name ? nl : sizeof end_name - 1] = '\0';
      while (i < n && isspace((unsigned char)s[i])) i++;
      if (i >= n || s[i] != '>') {
        buf_printf(err, "Unclosed end tag at byte offset %zu", begin);
        rc = -1;
        break;
      }
      i++;
      struct tag *t = &tags[ntags - 1];
      if (nl && strcmp(end_name, t->name) != 0) {
        buf_printf(err, "Unmatched end tag at byte offset %zu, expected \"</%s>\", "
                        "found \"</%.*s>\"", begin, t->name, (int)nl, s + name);
        rc = -1;
        break;
      }
      int32_t length = u - t->offset;
      enum kind k = t->kind;
      char *arg = t->arg;
      t->arg = NULL;
      int64_t user_id = 0;
      bool skip = length == 0;
      if (!skip && k == K_TEXT_URL) {
        struct buf url = BUF_INIT, checked = BUF_INIT;
        if (t->has_arg) buf_append_str(&url, arg ? arg : "");
        else buf_append(&url, res->data + t->begin, res->len - t->begin);
        free(arg);
        arg = NULL;
        enum link l = check_link(url.data ? url.data : "", url.len, &checked,
                                 &user_id);
        if (l == LINK_USER) k = K_MENTION_NAME;
        else if (l == LINK_URL) arg = buf_steal(&checked, NULL);
        else skip = true;
        buf_free(&url);
        buf_free(&checked);
      }
      if (!skip && k == K_CUSTOM_EMOJI) {
        bool ok = arg && *arg && arg[0] != '0' && strlen(arg) <= 19;
        for (const char *p = arg; ok && *p; p++) ok = isdigit((unsigned char)*p);
        if (!ok) {
          buf_append_str(err, "Invalid custom emoji identifier specified");
          free(arg);
          rc = -1;
          break;
        }
      }
      if (!skip && k == K_PRE && out->n) {
        /* <pre><code class="language-x">...</code></pre>: one pre entity
         * with its language. */
        struct pent *last = &out->v[out->n - 1];
        if (last->kind == K_CODE && last->offset == t->offset &&
            last->length == length && last->arg) {
          last->kind = K_PRE_CODE;
          skip = true;
        }
      }
      if (!skip && k == K_CODE && arg) {
        /* The language stays with the code only inside a pre. */
        bool in_pre = ntags >= 2 && tags[ntags - 2].kind == K_PRE;
        if (!in_pre) {
          free(arg);
          arg = NULL;
        }
      }
      if (!skip) padd(out, k, t->offset, length, arg, user_id);
      else free(arg);
      ntags--;
      continue;
    }
    /* A start tag. */
    i++;
    size_t name = i;
    while (i < n && tag_char(s[i])) i++;
    if (i >= n) {
      buf_printf(err, "Unclosed start tag at byte offset %zu", begin);
      rc = -1;
      break;
    }
    size_t nl = i - name;
    char tag_name[16];
    bool known = false;
    if (nl < sizeof tag_name) {
      for (size_t k = 0; k < nl; k++)
        tag_name[k] = (char)tolower((unsigned char)s[name + k]);
      tag_name[nl] = '\0';
      for (const char *const *t = supported_tags; *t && !known; t++)
        known = strcmp(*t, tag_name) == 0;
    }
    if (!known) {
      buf_printf(err, "Unsupported start tag \"%.*s\" at byte offset %zu", (int)nl,
                 s + name, begin);
      rc = -1;
      break;
    }
    struct tag t = {0};
    memcpy(t.name, tag_name, nl + 1);
    t.kind = tag_kind(tag_name);
    bool spoiler_class = false, expandable = false;
    while (rc == 0) {
      while (i < n && isspace((unsigned char)s[i])) i++;
      if (i >= n) {
        buf_printf(err, "Unclosed start tag at byte offset %zu", begin);
        rc = -1;
        break;
      }
      if (s[i] == '>') {
        i++;
        break;
      }
      size_t attr = i;
      while (i < n && (tag_char(s[i]) || s[i] == '_')) i++;
      size_t al = i - attr;
      if (al == 0) {
        buf_printf(err, "Empty attribute name in the tag \"%s\" at byte offset %zu",
                   tag_name, begin);
        rc = -1;
        break;
      }
      while (i < n && isspace((unsigned char)s[i])) i++;
      struct buf value = BUF_INIT;
      bool has_value = false;
      if (i < n && s[i] == '=') {
        i++;
        while (i < n && isspace((unsigned char)s[i])) i++;
        if (i >= n) {
          buf_printf(err, "Unclosed start tag \"%s\" at byte offset %zu", tag_name,
                     begin);
          rc = -1;
          break;
        }
        if (s[i] == '"' || s[i] == '\'') {
          const char *close = memchr(s + i + 1, s[i], n - i - 1);
          if (!close) {
            buf_printf(err, "Unclosed start tag at byte offset %zu", begin);
            rc = -1;
            break;
          }
          if (!html_text(s + i + 1, (size_t)(close - s - i - 1), &value, NULL)) {
            buf_append_str(err, surrogate);
            buf_free(&value);
            rc = -1;
            break;
          }
          i = (size_t)(close - s) + 1;
        } else {
          size_t token = i;
          while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '.' ||
                           s[i] == '-'))
            i++;
          if (i >= n || (s[i] != '>' && !isspace((unsigned char)s[i]))) {
            buf_printf(err, "Unexpected end of name token at byte offset %zu",
                       token);
            rc = -1;
            break;
          }
          buf_append(&value, s + token, i - token);
        }
        has_value = true;
      }
      const char *v = value.data ? value.data : "";
#define ATTR(word) (al == strlen(word) && strncasecmp(s + attr, word, al) == 0)
      if (t.kind == K_TEXT_URL && ATTR("href") && has_value) {
        free(t.arg);
        t.arg = xstrdup(v);
        t.has_arg = true;
      } else if (t.kind == K_CODE && ATTR("class") && has_value &&
                 strncmp(v, "language-", 9) == 0 && v[9]) {
        free(t.arg);
        t.arg = xstrdup(v + 9);
      } else if (!strcmp(tag_name, "span") && ATTR("class") && has_value &&
                 strcmp(v, "tg-spoiler") == 0) {
        spoiler_class = true;
      } else if (t.kind == K_CUSTOM_EMOJI && ATTR("emoji-id") && has_value) {
        free(t.arg);
        t.arg = xstrdup(v);
      } else if (t.kind == K_BLOCKQUOTE && ATTR("expandable")) {
        expandable = true;
      }
#undef ATTR
      buf_free(&value);
    }
    if (rc == 0 && !strcmp(tag_name, "span") && !spoiler_class) {
      buf_printf(err, "Tag \"span\" must have class \"tg-spoiler\" at byte offset %zu",
                 begin);
      rc = -1;
    }
    if (rc != 0) {
      free(t.arg);
      break;
    }
    if (t.kind == K_BLOCKQUOTE && expandable) t.kind = K_EXPANDABLE_BLOCKQUOTE;
    t.offset = u;
    t.begin = res->len;
    if (ntags == cap) {
      cap = cap ? cap * 2 : 8;
      tags = xrealloc(tags, cap * sizeof *tags);
    }
    tags[ntags++] = t;
  }
  if (rc == 0 && ntags) {
    buf_printf(err, "Can't find end tag corresponding to start tag \"%s\"",
               tags[ntags - 1].name);
    rc = -1;
  }
  for (size_t k = 0; k < ntags; k++) free(tags[k].arg);
  free(tags);
  return rc;
}

/* --- the result ------------------------------------------------------------ */

static int compare(const void *pa, const void *pb) {
  const struct pent *a = pa, *b = pb;
  if (a->offset != b->offset) return a->offset < b->offset ? -1 : 1;
  if (a->length != b->length) return a->length > b->length ? -1 : 1;
  int x = kinds[a->kind].priority, y = kinds[b->kind].priority;
  return x < y ? -1 : x > y;
}

static bool is_code(enum kind k) {
  return k == K_CODE || k == K_PRE || k == K_PRE_CODE;
}

/* As the server fixes what it parsed: empty entities go, the rest are
 * sorted, and nothing stays inside pre or code. */
static void finish(struct plist *p, struct ent_list *list) {
  if (p->n) qsort(p->v, p->n, sizeof *p->v, compare);
  for (size_t i = 0; i < p->n; i++) {
    struct pent *e = &p->v[i];
    bool drop = e->length <= 0;
    for (size_t j = 0; j < p->n && !drop; j++) {
      const struct pent *c = &p->v[j];
      if (j == i || !is_code(c->kind) || c->length <= 0) continue;
      bool inside = e->offset >= c->offset &&
                    e->offset + e->length <= c->offset + c->length;
      /* Of two code entities over one range, the first sorted stays. */
      if (inside && (!is_code(e->kind) || j < i)) drop = true;
    }
    if (drop) continue;
    if (list->n == list->cap) {
      list->cap = list->cap ? list->cap * 2 : 8;
      list->v = xrealloc(list->v, list->cap * sizeof *list->v);
    }
    struct ent *o = &list->v[list->n++];
    memset(o, 0, sizeof *o);
    snprintf(o->type, sizeof o->type, "%s", kinds[e->kind].api);
    o->offset = e->offset;
    o->length = e->length;
    o->user_id = e->user_id;
    if (e->kind == K_TEXT_URL) o->url = e->arg;
    else if (e->kind == K_PRE_CODE) o->language = e->arg;
    else if (e->kind == K_CUSTOM_EMOJI) o->custom_emoji_id = e->arg;
    else free(e->arg);
    e->arg = NULL;
  }
}

int entities_parse(const char *text, size_t len, enum ent_mode mode,
                   struct buf *out, struct ent_list *list, struct buf *err) {
  struct plist p = {0};
  struct buf res = BUF_INIT;
  int rc = 0;
  switch (mode) {
    case ENT_PLAIN: buf_append(&res, text, len); break;
    case ENT_HTML: rc = parse_html(text, len, &res, &p, err); break;
    case ENT_MARKDOWN_V2: rc = parse_markdown_v2(text, len, &res, &p, err); break;
    case ENT_MARKDOWN: rc = parse_markdown(text, len, &res, &p, err); break;
  }
  if (rc == 0) {
    finish(&p, list);
    buf_append(out, res.data ? res.data : "", res.len);
  }
  buf_free(&res);
  pfree(&p);
  return rc;
}

/* --- JSON ------------------------------------------------------------------ */

static const char *const known_types[] = {
    "mention", "hashtag", "cashtag", "bot_command", "url", "email",
    "phone_number", "bold", "italic", "underline", "strikethrough", "spoiler",
    "blockquote", "expandable_blockquote", "code", "pre", "text_link",
    "text_mention", "custom_emoji", "date_time", NULL};

static bool read_int(struct json_reader *r, int64_t *v) {
  struct json_number num;
  if (!json_read_number(r, &num) || !num.is_integer) return false;
  *v = num.i;
  return true;
}

int entities_from_json(const char *json, size_t len, size_t text_units,
                       struct ent_list *list, struct buf *err) {
  struct json_reader r;
  json_reader_init(&r, json, len);
  if (!json_array_begin(&r)) {
    buf_append_str(err, "can't parse entities JSON object");
    return -1;
  }
  size_t index = 0;
  while (json_array_next(&r)) {
    struct ent e = {0};
    int64_t offset = -1, length = -1;
    bool have_type = false;
    if (!json_object_begin(&r)) {
      buf_printf(err, "can't parse entities: entity %zu must be an object", index);
      return -1;
    }
    struct json_slice key, s;
    while (json_object_next(&r, &key)) {
      struct buf v = BUF_INIT;
      if (json_slice_is(&key, "type") && json_read_string(&r, &s)) {
        json_unescape(&s, &v);
        snprintf(e.type, sizeof e.type, "%s", v.data ? v.data : "");
        have_type = true;
      } else if (json_slice_is(&key, "offset")) {
        if (!read_int(&r, &offset)) offset = -2;
      } else if (json_slice_is(&key, "length")) {
        if (!read_int(&r, &length)) length = -2;
      } else if ((json_slice_is(&key, "url") || json_slice_is(&key, "language") ||
                  json_slice_is(&key, "custom_emoji_id")) &&
                 json_read_string(&r, &s)) {
        json_unescape(&s, &v);
        char **field = json_slice_is(&key, "url") ? &e.url
                       : json_slice_is(&key, "language") ? &e.language
                                                         : &e.custom_emoji_id;
        free(*field);
        *field = buf_steal(&v, NULL);
      } else if (json_slice_is(&key, "user")) {
        struct json_slice obj;
        struct json_reader at;
        int64_t id;
        if (json_skip(&r, &obj) && json_find_member(obj.ptr, obj.len, "id", &at) &&
            read_int(&at, &id))
          e.user_id = id;
      } else {
        json_skip(&r, NULL);
      }
      buf_free(&v);
    }
    bool known = false;
    for (const char *const *t = known_types; *t && have_type && !known; t++)
      known = strcmp(*t, e.type) == 0;
    const char *problem = NULL;
    if (!known) problem = have_type ? "has an unsupported type" : "has no type";
    else if (offset < 0 || length < 0)
      problem = "needs a non-negative integer offset and length";
    else if ((size_t)offset + (size_t)length > text_units)
      problem = "ends after the end of the text (offsets count UTF-16 code units)";
    if (problem) {
      buf_printf(err, "can't parse entities: entity %zu (%s, offset %lld, length "
                      "%lld) %s, which is %zu UTF-16 code units long", index,
                 have_type ? e.type : "?", (long long)offset, (long long)length,
                 problem, text_units);
      free(e.url);
      free(e.language);
      free(e.custom_emoji_id);
      return -1;
    }
    e.offset = (int32_t)offset;
    e.length = (int32_t)length;
    if (list->n == list->cap) {
      list->cap = list->cap ? list->cap * 2 : 8;
      list->v = xrealloc(list->v, list->cap * sizeof *list->v);
    }
    list->v[list->n++] = e;
    index++;
  }
  if (json_error(&r)) {
    buf_append_str(err, "can't parse entities JSON object");
    return -1;
  }
  return 0;
}

void entities_to_json(const struct ent_list *list, struct buf *out) {
  buf_append_char(out, '[');
  for (size_t i = 0; i < list->n; i++) {
    const struct ent *e = &list->v[i];
    buf_printf(out, "%s{\"offset\":%d,\"length\":%d,\"type\":\"%s\"", i ? "," : "",
               (int)e->offset, (int)e->length, e->type);
    if (e->url) {
      buf_append_str(out, ",\"url\":");
      json_write_string(out, e->url, strlen(e->url));
    }
    if (e->language) {
      buf_append_str(out, ",\"language\":");
      json_write_string(out, e->language, strlen(e->language));
    }
    if (e->custom_emoji_id) {
      buf_append_str(out, ",\"custom_emoji_id\":");
      json_write_string(out, e->custom_emoji_id, strlen(e->custom_emoji_id));
    }
    if (e->user_id)
      buf_printf(out, ",\"user\":{\"id\":%lld,\"is_bot\":false,\"first_name\":\"\"}",
                 (long long)e->user_id);
    buf_append_char(out, '}');
  }
  buf_append_char(out, ']');
}

void ent_list_free(struct ent_list *list) {
  for (size_t i = 0; i < list->n; i++) {
    free(list->v[i].url);
    free(list->v[i].language);
    free(list->v[i].custom_emoji_id);
  }
  free(list->v);
  memset(list, 0, sizeof *list);
}
