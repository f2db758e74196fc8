#!/usr/bin/env python3
"""Writes docs/reference/lua-api.md from the LuaCATS annotations of
types/tghost.lua, so that the reference and what editors show cannot drift.

    tools/luaapi_doc.py types/tghost.lua docs/reference/lua-api.md
    tools/luaapi_doc.py --check types/tghost.lua docs/reference/lua-api.md

--check (the ctest docs.lua_api) exits 1 when the page is not what the
annotations give, and says how to regenerate it. The page is never edited
by hand: to change it, change the annotations.
"""
import re
import sys

# How code calls the methods of an object class: ctx:reply, not Context:reply.
RECEIVERS = {
    "tghost.Context": "ctx",
    "tghost.Bot": "bot",
    "tghost.Composer": "bot",
    "tghost.RunHandle": "handle",
    "tghost.Job": "job",
    "tghost.Form": "ctx.form",
    "tghost.MenuControl": "ctx.menu",
    "tghost.I18nContext": "ctx.i18n",
    "tghost.Api": "bot.api",
    "tghost.ApiConfig": "bot.api.config",
    "tghost.HttpStream": "res",
    "tghost.Process": "p",
    "tghost.Task": "task",
    "tghost.Storage": "store",
}

FUNC = re.compile(r"^function ([A-Za-z_][A-Za-z0-9_.]*)([.:])([A-Za-z_][A-Za-z0-9_]*)\((.*)\) end$")
GLOBAL_FUNC = re.compile(r"^function ([A-Za-z_][A-Za-z0-9_]*)\((.*)\) end$")
TABLE = re.compile(r"^(?:local )?([A-Za-z_][A-Za-z0-9_]*) = \{\}$")


def slug(text):
    s = text.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def parse(lines):
    """The API as entries in file order: classes (each with the functions
    defined on it), the globals, and the aliases."""
    classes = []          # class items, in file order
    by_name = {}
    globals_ = []         # global functions and tables
    aliases = []
    block = []            # the --- lines before the current line
    local_class = {}      # local variable -> class name
    pending_class = None  # a class block waiting for its table line
    for raw in lines:
        line = raw.rstrip("\n")
        if line.startswith("---"):
            if not re.match(r"^-{10,}$", line):
                block.append(line[3:])
            continue
        item = take_block(block) if block else None
        block = []
        m = FUNC.match(line)
        g = GLOBAL_FUNC.match(line)
        t = TABLE.match(line)
        if item and item["kind"] == "class":
            item["functions"] = []
            classes.append(item)
            by_name[item["name"]] = item
            pending_class = item
            if t:
                local_class[t.group(1)] = item["name"]
            continue
        if item and item["kind"] == "alias":
            aliases.extend(item["aliases"])
        if t and pending_class is not None and (item is None or item["kind"] != "doc"):
            local_class[t.group(1)] = pending_class["name"]
        elif m and item and item["kind"] == "doc":
            owner, sep, name, args = m.groups()
            cls = local_class.get(owner, owner)
            item.update(kind="function", owner=cls, sep=sep, name=name, args=args)
            if cls in by_name:
                by_name[cls]["functions"].append(item)
            else:
                globals_.append(item)
        elif g and item and item["kind"] == "doc":
            name, args = g.groups()
            item.update(kind="function", owner=None, sep="", name=name, args=args)
            globals_.append(item)
        elif t and item and item["kind"] == "doc" and item.get("type"):
            item.update(kind="global", name=t.group(1))
            globals_.append(item)
        pending_class = None
    return classes, globals_, aliases


def take_block(block):
    """One annotation block: its text, @class/@field/@param/@return/@alias."""
    item = {"kind": "doc", "text": [], "params": [], "returns": [],
            "fields": [], "aliases": []}
    for b in block:
        if b.startswith("@class "):
            name = b[len("@class "):].split(":")[0].strip()
            item.update(kind="class", name=name)
        elif b.startswith("@field "):
            m = re.match(r"@field ([A-Za-z_][A-Za-z0-9_]*\??) (\S+(?:\s*\|\s*\S+)*)\s*(.*)$", b)
            if m:
                item["fields"].append((m.group(1), m.group(2), m.group(3)))
            else:
                item["fields"].append((b.split()[1], "", ""))
        elif b.startswith("@param "):
            name, rest = (b[len("@param "):].split(" ", 1) + [""])[:2]
            typ, desc = split_type(rest)
            item["params"].append((name, typ, desc))
        elif b.startswith("@return "):
            typ, desc = split_type(b[len("@return "):])
            item["returns"].append((typ, desc))
        elif b.startswith("@type "):
            item["type"] = b[len("@type "):].strip()
        elif b.startswith("@alias "):
            name, rest = (b[len("@alias "):].split(" ", 1) + [""])[:2]
            item["aliases"].append({"kind": "alias", "name": name, "type": rest.strip(),
                                    "text": list(item["text"])})
            item["kind"] = "alias"
            item["text"] = []
        elif b.startswith("@meta") or b.startswith("@diagnostic"):
            pass
        elif b.startswith("@"):
            item["text"].append(b)
        else:
            item["text"].append(b.strip())
    return item


def split_type(rest):
    """A LuaCATS type and what follows it: types may hold spaces inside
    braces and parentheses ({ a: b, c?: d }, fun(x: y): z)."""
    depth = 0
    i = 0
    rest = rest.strip()
    while i < len(rest):
        c = rest[i]
        if c in "({[<":
            depth += 1
        elif c in ")}]>":
            depth -= 1
        elif c == " " and depth == 0:
            # "fun(...): type" and "a | b" go on past the space
            if rest[i - 1] in ":|," or rest[i + 1:i + 2] in ("|",):
                i += 1
                continue
            return rest[:i], rest[i + 1:].strip()
        i += 1
    return rest, ""


def prose(lines):
    text = " ".join(l for l in lines if l)
    return text.strip()


def code(s, in_table=False):
    """Inline code that survives backticks inside (and pipes, in a table)."""
    if in_table:
        s = s.replace("|", "\\|")
    return "`` " + s + " ``" if "`" in s else "`" + s + "`"


def render_function(item, out):
    owner = item["owner"]
    if owner is None:
        prefix = ""
    elif owner in RECEIVERS:
        prefix = RECEIVERS[owner] + (":" if item["sep"] == ":" else ".")
    else:
        prefix = owner + item["sep"]
    sig = prefix + item["name"] + "(" + item["args"] + ")"
    ret = ", ".join(t for t, _ in item["returns"])
    head = "- **" + code(sig) + "**" + (" → " + code(ret) if ret else "")
    text = prose(item["text"])
    out.append(head + (": " + text if text else ""))
    for name, typ, desc in item["params"]:
        out.append("  - " + code(name) + " " + code(typ) + ((": " + desc) if desc else ""))
    for typ, desc in item["returns"]:
        if desc:
            out.append("  - returns " + code(typ) + ": " + desc)
    out.append("")


def render(api, source_name):
    classes, globals_, aliases = api
    out = ["# Lua API reference", "",
           "<!-- Generated by tools/luaapi_doc.py from " + source_name +
           "; do not edit: change the annotations and run",
           "     tools/luaapi_doc.py " + source_name + " docs/reference/lua-api.md"
           " (the test docs.lua_api fails while this page is stale). -->", "",
           "Every function, object and field of tghost's Lua API, from the",
           "annotations editors read (`" + source_name + "`; see",
           "[Editor support](../guide/testing.md#editor-support)). The guide",
           "explains them with examples; this page lists them. Object methods",
           "are shown on the name code usually gives the object (`ctx:reply`,",
           "`bot.on`, `handle:stop`).", "",
           "The Bot API's own objects (`tg.Message`, `tg.Update`, ...) and",
           "methods are in `types/botapi.lua`, generated from the Bot API.", "",
           "## Contents", "",
           "- [Globals](#globals)"]
    for c in classes:
        out.append("- [" + c["name"] + "](#" + slug(c["name"]) + ")")
    out.append("- [Types](#types)")
    out.append("")
    out.append("## Globals")
    out.append("")
    for item in globals_:
        if item["kind"] == "global":
            out.append("- **" + code(item["name"]) + "** (" + code(item["type"]) + ")" +
                       ((": " + prose(item["text"])) if item["text"] else ""))
            out.append("")
        else:
            render_function(item, out)
    for c in classes:
        out.append("## " + c["name"])
        out.append("")
        if c["text"]:
            out.append(prose(c["text"]))
            out.append("")
        if c["fields"]:
            out.append("| field | type | |")
            out.append("|---|---|---|")
            for name, typ, desc in c["fields"]:
                out.append("| " + code(name, True) + " | " + (code(typ, True) if typ else "") +
                           " | " + desc.replace("|", "\\|") + " |")
            out.append("")
        for f in c["functions"]:
            render_function(f, out)
    out.append("## Types")
    out.append("")
    for a in aliases:
        out.append("- **" + code(a["name"]) + "** = " + code(a["type"]) +
                   ((": " + prose(a["text"])) if a["text"] else ""))
        out.append("")
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"


def main(argv):
    check = False
    if argv and argv[0] == "--check":
        check = True
        argv = argv[1:]
    if len(argv) != 2:
        sys.stderr.write(__doc__)
        return 2
    source, page = argv
    with open(source, encoding="utf-8") as f:
        text = render(parse(f.readlines()), "types/tghost.lua")
    if check:
        try:
            with open(page, encoding="utf-8") as f:
                current = f.read()
        except OSError as e:
            print("docs.lua_api: cannot read %s: %s" % (page, e))
            return 1
        if current != text:
            import difflib
            diff = difflib.unified_diff(current.splitlines(), text.splitlines(),
                                        page, "from " + source, lineterm="", n=1)
            print("\n".join(list(diff)[:40]))
            print("docs.lua_api: %s is stale: the annotations in %s changed. "
                  "Run: tools/luaapi_doc.py %s %s" % (page, source, source, page))
            return 1
        print("docs.lua_api: %s matches %s" % (page, source))
        return 0
    with open(page, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
