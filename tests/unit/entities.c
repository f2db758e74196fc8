/* Telegram's formatting parser (src/sandbox/entities.c).
 *
 * The differential corpus: every formatting example of the Bot API
 * documentation ("Formatting options": MarkdownV2, HTML and legacy
 * Markdown style, each line a case), with the text and entities written
 * by hand from the documentation's rules (offsets in UTF-16 code units),
 * the refusals with Telegram's error texts, and a few of the
 * documentation's rules stated as cases (escaping, "__" being underline,
 * "snake_case" in legacy Markdown). Then a property test: random strings
 * of markup characters never crash the parser, and every entity it
 * returns lies inside the text, sorted, non-empty. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox/entities.h"

#include "check.h"
#include "testreg.h"

struct ok_case {
  enum ent_mode mode;
  const char *input, *text, *entities;
};

struct error_case {
  enum ent_mode mode;
  const char *input, *error;
};

#define MD2 ENT_MARKDOWN_V2
#define HTML ENT_HTML
#define MD ENT_MARKDOWN

/* 6: the nested example (MarkdownV2 and HTML give the same). */
#define NESTED_TEXT "bold italic bold italic bold strikethrough italic bold " \
  "strikethrough spoiler underline italic bold bold"
#define NESTED_ENTITIES "[{\"offset\":0,\"length\":103,\"type\":\"bold\"}," \
  "{\"offset\":5,\"length\":93,\"type\":\"italic\"}," \
  "{\"offset\":17,\"length\":59,\"type\":\"strikethrough\"}," \
  "{\"offset\":43,\"length\":33,\"type\":\"spoiler\"}," \
  "{\"offset\":77,\"length\":21,\"type\":\"underline\"}]"
#define PRE "pre-formatted fixed-width code block"
#define PY PRE " written in the Python programming language"
#define QUOTE "Block quotation started\nBlock quotation continued\n" \
  "The last line of the block quotation"

static const struct ok_case corpus[] = {
    /* MarkdownV2 style, as documented. */
    {MD2, "*bold \\*text*", "bold *text",
     "[{\"offset\":0,\"length\":10,\"type\":\"bold\"}]"},
    {MD2, "_italic \\*text_", "italic *text",
     "[{\"offset\":0,\"length\":12,\"type\":\"italic\"}]"},
    {MD2, "__underline__", "underline",
     "[{\"offset\":0,\"length\":9,\"type\":\"underline\"}]"},
    {MD2, "~strikethrough~", "strikethrough",
     "[{\"offset\":0,\"length\":13,\"type\":\"strikethrough\"}]"},
    {MD2, "||spoiler||", "spoiler",
     "[{\"offset\":0,\"length\":7,\"type\":\"spoiler\"}]"},
    {MD2, "*bold _italic bold ~italic bold strikethrough ||italic bold "
          "strikethrough spoiler||~ __underline italic bold___ bold*",
     NESTED_TEXT, NESTED_ENTITIES},
    {MD2, "[inline URL](http://www.example.com/)", "inline URL",
     "[{\"offset\":0,\"length\":10,\"type\":\"text_link\","
     "\"url\":\"http://www.example.com/\"}]"},
    {MD2, "[inline mention of a user](tg://user?id=123456789)",
     "inline mention of a user",
     "[{\"offset\":0,\"length\":24,\"type\":\"text_mention\",\"user\":"
     "{\"id\":123456789,\"is_bot\":false,\"first_name\":\"\"}}]"},
    {MD2, "![👍](tg://emoji?id=5368324170671202286)", "👍",
     "[{\"offset\":0,\"length\":2,\"type\":\"custom_emoji\","
     "\"custom_emoji_id\":\"5368324170671202286\"}]"},
    {MD2, "`inline fixed-width code`", "inline fixed-width code",
     "[{\"offset\":0,\"length\":23,\"type\":\"code\"}]"},
    {MD2, "```\n" PRE "```", PRE,
     "[{\"offset\":0,\"length\":36,\"type\":\"pre\"}]"},
    {MD2, "```python\n" PY "```", PY,
     "[{\"offset\":0,\"length\":79,\"type\":\"pre\",\"language\":\"python\"}]"},
    {MD2, ">Block quotation started\n>Block quotation continued\n"
          ">The last line of the block quotation", QUOTE,
     "[{\"offset\":0,\"length\":86,\"type\":\"blockquote\"}]"},
    {MD2, "**>The expandable block quotation started\n"
          ">Expandable block quotation continued\n"
          ">The last line of the expandable block quotation with the "
          "expandability mark||",
     "The expandable block quotation started\nExpandable block quotation "
     "continued\nThe last line of the expandable block quotation with the "
     "expandability mark",
     "[{\"offset\":0,\"length\":151,\"type\":\"expandable_blockquote\"}]"},
    /* MarkdownV2 rules stated in the documentation. */
    {MD2, "1\\. escaped\\! \\(all\\) \\#reserved \\+\\-\\=\\|\\{\\}\\.",
     "1. escaped! (all) #reserved +-=|{}.", "[]"},
    {MD2, "___italic underline_**__", "italic underline",
     "[{\"offset\":0,\"length\":16,\"type\":\"italic\"},"
     "{\"offset\":0,\"length\":16,\"type\":\"underline\"}]"},
    {MD2, "`a \\` b \\\\ c`", "a ` b \\ c",
     "[{\"offset\":0,\"length\":9,\"type\":\"code\"}]"},
    {MD2, "[x](http://e.com/a\\)b)", "x",
     "[{\"offset\":0,\"length\":1,\"type\":\"text_link\","
     "\"url\":\"http://e.com/a)b\"}]"},
    {MD2, "👍 *bold*", "👍 bold",
     "[{\"offset\":3,\"length\":4,\"type\":\"bold\"}]"},
    /* HTML style, as documented. */
    {HTML, "<b>bold</b>, <strong>bold</strong>", "bold, bold",
     "[{\"offset\":0,\"length\":4,\"type\":\"bold\"},"
     "{\"offset\":6,\"length\":4,\"type\":\"bold\"}]"},
    {HTML, "<i>italic</i>, <em>italic</em>", "italic, italic",
     "[{\"offset\":0,\"length\":6,\"type\":\"italic\"},"
     "{\"offset\":8,\"length\":6,\"type\":\"italic\"}]"},
    {HTML, "<u>underline</u>, <ins>underline</ins>", "underline, underline",
     "[{\"offset\":0,\"length\":9,\"type\":\"underline\"},"
     "{\"offset\":11,\"length\":9,\"type\":\"underline\"}]"},
    {HTML, "<s>strikethrough</s>, <strike>strikethrough</strike>, "
           "<del>strikethrough</del>",
     "strikethrough, strikethrough, strikethrough",
     "[{\"offset\":0,\"length\":13,\"type\":\"strikethrough\"},"
     "{\"offset\":15,\"length\":13,\"type\":\"strikethrough\"},"
     "{\"offset\":30,\"length\":13,\"type\":\"strikethrough\"}]"},
    {HTML, "<span class=\"tg-spoiler\">spoiler</span>, <tg-spoiler>spoiler</tg-spoiler>",
     "spoiler, spoiler",
     "[{\"offset\":0,\"length\":7,\"type\":\"spoiler\"},"
     "{\"offset\":9,\"length\":7,\"type\":\"spoiler\"}]"},
    {HTML, "<b>bold <i>italic bold <s>italic bold strikethrough <span "
           "class=\"tg-spoiler\">italic bold strikethrough spoiler</span></s> "
           "<u>underline italic bold</u></i> bold</b>",
     NESTED_TEXT, NESTED_ENTITIES},
    {HTML, "<a href=\"http://www.example.com/\">inline URL</a>", "inline URL",
     "[{\"offset\":0,\"length\":10,\"type\":\"text_link\","
     "\"url\":\"http://www.example.com/\"}]"},
    {HTML, "<a href=\"tg://user?id=123456789\">inline mention of a user</a>",
     "inline mention of a user",
     "[{\"offset\":0,\"length\":24,\"type\":\"text_mention\",\"user\":"
     "{\"id\":123456789,\"is_bot\":false,\"first_name\":\"\"}}]"},
    {HTML, "<tg-emoji emoji-id=\"5368324170671202286\">👍</tg-emoji>", "👍",
     "[{\"offset\":0,\"length\":2,\"type\":\"custom_emoji\","
     "\"custom_emoji_id\":\"5368324170671202286\"}]"},
    {HTML, "<code>inline fixed-width code</code>", "inline fixed-width code",
     "[{\"offset\":0,\"length\":23,\"type\":\"code\"}]"},
    {HTML, "<pre>" PRE "</pre>", PRE,
     "[{\"offset\":0,\"length\":36,\"type\":\"pre\"}]"},
    {HTML, "<pre><code class=\"language-python\">" PY "</code></pre>", PY,
     "[{\"offset\":0,\"length\":79,\"type\":\"pre\",\"language\":\"python\"}]"},
    {HTML, "<blockquote>" QUOTE "</blockquote>", QUOTE,
     "[{\"offset\":0,\"length\":86,\"type\":\"blockquote\"}]"},
    {HTML, "<blockquote expandable>Expandable block quotation started\n"
           "Expandable block quotation continued\nThe last line of the block "
           "quotation</blockquote>",
     "Expandable block quotation started\nExpandable block quotation "
     "continued\nThe last line of the block quotation",
     "[{\"offset\":0,\"length\":108,\"type\":\"expandable_blockquote\"}]"},
    /* HTML rules stated in the documentation. */
    {HTML, "&lt;b&gt; &amp; &quot;x&quot;", "<b> & \"x\"", "[]"},
    {HTML, "&#128077; &#x1F44D; &nbsp;", "👍 👍 &nbsp;", "[]"},
    {HTML, "<code class=\"language-c\">int x;</code>", "int x;",
     "[{\"offset\":0,\"length\":6,\"type\":\"code\"}]"},
    {HTML, "é <b>x</b>", "é x", "[{\"offset\":2,\"length\":1,\"type\":\"bold\"}]"},
    /* Markdown (legacy) style, as documented. */
    {MD, "*bold text*", "bold text", "[{\"offset\":0,\"length\":9,\"type\":\"bold\"}]"},
    {MD, "_italic text_", "italic text",
     "[{\"offset\":0,\"length\":11,\"type\":\"italic\"}]"},
    {MD, "[inline URL](http://www.example.com/)", "inline URL",
     "[{\"offset\":0,\"length\":10,\"type\":\"text_link\","
     "\"url\":\"http://www.example.com/\"}]"},
    {MD, "[inline mention of a user](tg://user?id=123456789)",
     "inline mention of a user",
     "[{\"offset\":0,\"length\":24,\"type\":\"text_mention\",\"user\":"
     "{\"id\":123456789,\"is_bot\":false,\"first_name\":\"\"}}]"},
    {MD, "`inline fixed-width code`", "inline fixed-width code",
     "[{\"offset\":0,\"length\":23,\"type\":\"code\"}]"},
    {MD, "```\n" PRE "```", PRE, "[{\"offset\":0,\"length\":36,\"type\":\"pre\"}]"},
    {MD, "```python\n" PY "```", PY,
     "[{\"offset\":0,\"length\":79,\"type\":\"pre\",\"language\":\"python\"}]"},
    {MD, "snake_case_name", "snakecasename",
     "[{\"offset\":5,\"length\":4,\"type\":\"italic\"}]"},
    {MD, "1.5 \\_ \\* !", "1.5 _ * !", "[]"},
};

static const struct error_case refusals[] = {
    /* The repros. */
    {MD2, "Hello. World! *bold*",
     "Character '.' is reserved and must be escaped with the preceding '\\'"},
    {HTML, "<i>unclosed", "Can't find end tag corresponding to start tag \"i\""},
    /* More of Telegram's refusals. */
    {MD2, "price: 5-10", "Character '-' is reserved and must be escaped with "
                         "the preceding '\\'"},
    {MD2, "*bold", "Can't find end of Bold entity at byte offset 0"},
    {MD2, "ok _it", "Can't find end of Italic entity at byte offset 3"},
    {MD2, "`code", "Can't find end of Code entity at byte offset 0"},
    {MD2, "[a](http://x.com", "Can't find end of a URL at byte offset 4"},
    {MD2, "![x]", "Custom emoji entity must contain a tg://emoji URL"},
    {MD2, "![x](tg://emoji?id=0)", "Invalid custom emoji identifier specified"},
    {HTML, "<blink>x</blink>", "Unsupported start tag \"blink\" at byte offset 0"},
    {HTML, "a < b", "Unsupported start tag \"\" at byte offset 2"},
    {HTML, "<b>x</i>", "Unmatched end tag at byte offset 4, expected \"</b>\", "
                       "found \"</i>\""},
    {HTML, "x</b>", "Unexpected end tag at byte offset 1"},
    {HTML, "<span>x</span>", "Tag \"span\" must have class \"tg-spoiler\" at "
                             "byte offset 0"},
    {HTML, "<b", "Unclosed start tag at byte offset 0"},
    {HTML, "&#xD83D;", "Text contains invalid Unicode characters after "
                       "decoding HTML entities, check for unmatched surrogate "
                       "code units"},
    {MD, "*bold", "Can't find end of the entity starting at byte offset 0"},
    {MD, "a_b", "Can't find end of the entity starting at byte offset 1"},
};

static const char *mode_name(enum ent_mode m) {
  return m == HTML ? "HTML" : m == MD2 ? "MarkdownV2" : m == MD ? "Markdown" : "plain";
}

TEST(documented_examples) {
  size_t n = sizeof corpus / sizeof corpus[0];
  for (size_t i = 0; i < n; i++) {
    const struct ok_case *c = &corpus[i];
    struct buf text = BUF_INIT, json = BUF_INIT, err = BUF_INIT;
    struct ent_list list = {0};
    int rc = entities_parse(c->input, strlen(c->input), c->mode, &text, &list, &err);
    CHECK(rc == 0, "case %zu (%s) %s: refused: %s", i, mode_name(c->mode),
          c->input, err.data);
    entities_to_json(&list, &json);
    CHECK(strcmp(text.data ? text.data : "", c->text) == 0,
          "case %zu (%s) %s:\n  text %s\n  want %s", i, mode_name(c->mode),
          c->input, text.data, c->text);
    CHECK(strcmp(json.data, c->entities) == 0,
          "case %zu (%s) %s:\n  entities %s\n  want     %s", i,
          mode_name(c->mode), c->input, json.data, c->entities);
    buf_free(&text);
    buf_free(&json);
    buf_free(&err);
    ent_list_free(&list);
  }
  printf("%zu documented examples parsed as documented\n", n);
}

TEST(refusals) {
  size_t n = sizeof refusals / sizeof refusals[0];
  for (size_t i = 0; i < n; i++) {
    const struct error_case *c = &refusals[i];
    struct buf text = BUF_INIT, err = BUF_INIT;
    struct ent_list list = {0};
    int rc = entities_parse(c->input, strlen(c->input), c->mode, &text, &list, &err);
    CHECK(rc == -1, "case %zu (%s) %s: accepted (Telegram refuses it: %s)", i,
          mode_name(c->mode), c->input, c->error);
    CHECK(strcmp(err.data, c->error) == 0, "case %zu (%s) %s:\n  error %s\n  want  %s",
          i, mode_name(c->mode), c->input, err.data, c->error);
    buf_free(&text);
    buf_free(&err);
    ent_list_free(&list);
  }
  printf("%zu refusals with Telegram's texts\n", n);
}

TEST(parse_modes) {
  enum ent_mode m;
  CHECK(entities_mode("HTML", &m) && m == HTML, "HTML");
  CHECK(entities_mode("html", &m) && m == HTML, "html (any case)");
  CHECK(entities_mode("MarkdownV2", &m) && m == MD2, "MarkdownV2");
  CHECK(entities_mode("Markdown", &m) && m == MD, "Markdown");
  CHECK(entities_mode("", &m) && m == ENT_PLAIN, "empty");
  CHECK(!entities_mode("Markdown3", &m), "Markdown3 is not a parse mode");
}

TEST(explicit_entities) {
  struct ent_list list = {0};
  struct buf err = BUF_INIT;
  const char *ok = "[{\"type\":\"bold\",\"offset\":0,\"length\":2},"
                   "{\"type\":\"text_link\",\"offset\":2,\"length\":1,\"url\":\"http://a.b/\"}]";
  CHECK(entities_from_json(ok, strlen(ok), 3, &list, &err) == 0, "%s", err.data);
  CHECK(list.n == 2 && strcmp(list.v[1].url, "http://a.b/") == 0, "two entities");
  ent_list_free(&list);
  const char *past = "[{\"type\":\"bold\",\"offset\":2,\"length\":2}]";
  CHECK(entities_from_json(past, strlen(past), 3, &list, &err) == -1,
        "an entity past the text's end was accepted");
  CHECK(strstr(err.data, "UTF-16"), "%s", err.data);
  buf_reset(&err);
  const char *bad = "[{\"type\":\"blink\",\"offset\":0,\"length\":1}]";
  CHECK(entities_from_json(bad, strlen(bad), 3, &list, &err) == -1,
        "an unknown type was accepted");
  ent_list_free(&list);
  buf_free(&err);
  /* UTF-16: 👍 is two units. */
  CHECK(entities_utf16_length("👍a", strlen("👍a")) == 3, "UTF-16 length");
}

/* xorshift64* */
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * 2685821657736338717ull;
}

TEST(random_markup) {
  static const char *const atoms[] = {
      "*", "_", "__", "~", "||", "`", "```", "[", "]", "(", ")", "!", ">", "\n",
      "\\", "a", "b ", "👍", "é", "<b>", "</b>", "<i>", "</>", "<a href=\"x.y\">",
      "</a>", "&lt;", "&#128077;", "<pre>", "<code class=\"language-c\">",
      "</code>", "</pre>", "<blockquote>", "</blockquote>", "&", "<", "tg://user?id=1",
      "](http://a.b)", "**>", "||\n"};
  size_t natoms = sizeof atoms / sizeof atoms[0];
  int parsed = 0;
  for (int iter = 0; iter < 20000; iter++) {
    struct buf in = BUF_INIT, text = BUF_INIT, err = BUF_INIT;
    int len = (int)(rnd() % 24);
    for (int k = 0; k < len; k++) buf_append_str(&in, atoms[rnd() % natoms]);
    enum ent_mode mode = (enum ent_mode)(1 + rnd() % 3);
    struct ent_list list = {0};
    if (entities_parse(in.data ? in.data : "", in.len, mode, &text, &list, &err) == 0) {
      parsed++;
      size_t units = entities_utf16_length(text.data ? text.data : "", text.len);
      for (size_t i = 0; i < list.n; i++) {
        const struct ent *e = &list.v[i];
        CHECK(e->length > 0 && e->offset >= 0 &&
                  (size_t)e->offset + (size_t)e->length <= units,
              "entity %s %d+%d outside a text of %zu units (input %s)", e->type,
              e->offset, e->length, units, in.data);
        if (i)
          CHECK(list.v[i - 1].offset <= e->offset, "entities not sorted (input %s)",
                in.data);
      }
    } else {
      CHECK(err.len > 0, "refused without a reason (input %s)", in.data);
    }
    buf_free(&in);
    buf_free(&text);
    buf_free(&err);
    ent_list_free(&list);
  }
  printf("20000 random inputs, %d accepted\n", parsed);
}
