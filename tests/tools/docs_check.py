#!/usr/bin/env python3
"""The documentation's own tests: README.md and docs/**/*.md.

    docs_check.py samples TGHOST SOURCE_DIR   every ```lua sample runs
    docs_check.py links SOURCE_DIR            every relative link resolves
    docs_check.py options TGHOST SOURCE_DIR   every --help option is documented

Samples. Each ```lua block of a page is written to a folder of that page's
own (a scratch copy, so samples may write bot.db) and run by tghost:

- `tghost --check sample.lua` always: it must exit 0 and log no warning
  or error (a registration-time mistake, an unknown option, a pattern that
  looks like one, ...);
- when the sample registers handlers it must also have a transcript, and
  `tghost --sandbox sample.lua --script sample.chat` must pass. The
  transcript is the ```chat block that follows the sample (shown to the
  reader), or an HTML comment right after it (hidden):

      <!-- chat
      > /start
      < Hi Alice
      -->

A sample whose first line is `-- NAME.lua` (or `-- dir/NAME.lua`) is a
file the page's other samples use (a module, a locale): it is written
under that name in the page's folder before the page's samples run, and
checked as well.

Three marks on the fence change that, and are the exceptions:

- ```lua script  a test script (bot.handleUpdate and asserts, no run()):
  `tghost sample.lua` runs it and it must exit 0;
- ```lua check  the sample is a whole script, but its handlers need what
  the sandbox has not (a Redis, a model server, a web server): --check
  only;
- ```lua fragment  a piece of a script on purpose (a handler's body, a
  table shape): it is only compiled (Lua's load), not run.

The run ends with the counts of each kind and exits 1 at any failure,
naming the page, the sample's line and what tghost said.
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

FENCE = re.compile(r"^(`{3,})\s*([A-Za-z0-9_+-]*)\s*(.*)$")
MODULE_NAME = re.compile(r"^-- ([A-Za-z0-9_./-]+\.lua)(?:\s|$)")
# Handler registrations: a sample that makes them needs a transcript.
HANDLERS = re.compile(
    r"\b(?:bot|pm|greeting|games|[a-z_]+)\s*[.:]\s*(?:on|command|hears|callbackQuery|"
    r"inlineQuery|chosenInlineResult|gameQuery|reaction|chatType|route|branch|"
    r"errorBoundary|fork|preCheckoutQuery|shippingQuery)\s*\(")
RUN_CALL = re.compile(r"\b(?:run\s*\(|bot[.:]start\s*[({])")


def pages(root):
    found = [os.path.join(root, "README.md")]
    found += sorted(glob.glob(os.path.join(root, "docs", "**", "*.md"), recursive=True))
    return found


def blocks(text):
    """(line, info words, body, following transcript or None) per ```lua block."""
    lines = text.split("\n")
    out = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        ticks, lang, rest = m.group(1), m.group(2), m.group(3)
        start = i
        j = i + 1
        while j < len(lines) and not lines[j].startswith(ticks):
            j += 1
        body = "\n".join(lines[i + 1:j]) + "\n"
        if lang == "lua":
            out.append({"line": start + 1, "marks": rest.split(), "body": body,
                        "chat": transcript_after(lines, j + 1)})
        i = j + 1
    return out


def transcript_after(lines, k):
    """The ```chat block or <!-- chat ... --> comment after a sample: only
    blank lines and prose without fences may stand in between."""
    while k < len(lines):
        line = lines[k]
        if line.strip() == "<!-- chat":
            end = k + 1
            while end < len(lines) and lines[end].strip() != "-->":
                end += 1
            return "\n".join(lines[k + 1:end]) + "\n"
        m = FENCE.match(line)
        if m:
            end = k + 1
            while end < len(lines) and not lines[end].startswith(m.group(1)):
                end += 1
            if m.group(2) == "chat":
                return "\n".join(lines[k + 1:end]) + "\n"
            if m.group(2) == "lua":
                return None
            k = end          # an output or a shell block: look past it
        if line.startswith("#"):
            return None
        k += 1
    return None


def run(cmd, cwd, timeout=60, extra_env=None):
    env = {k: v for k, v in os.environ.items() if k not in ("BOT_TOKEN",)}
    env.update(extra_env or {})
    env["NO_COLOR"] = "1"
    try:
        p = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout)
        return p.returncode, p.stdout.decode("utf-8", "replace")
    except subprocess.TimeoutExpired as e:
        return -1, (e.stdout or b"").decode("utf-8", "replace") + "\n(timed out)"


# Lines of --check's output that are not a problem with the sample.
CHECK_FINE = re.compile(r"loads without errors|does not call run\(bot\)|"
                        r" NOTE |not sent \(--check\)|--check:")
COMPILE = """local path = os.getenv("TGHOST_DOC_FRAGMENT")
local f = assert(io.open(path))
local src = f:read("a")
f:close()
local fn, err = load(src, "=" .. os.getenv("TGHOST_DOC_NAME"))
if not fn then error(err, 0) end
"""


def samples(tghost, root):
    failures = []
    counts = {"transcript": 0, "script": 0, "check": 0, "fragment": 0}
    scratch = tempfile.mkdtemp(prefix="tghost-docs-")
    try:
        for page in pages(root):
            rel = os.path.relpath(page, root)
            with open(page, encoding="utf-8") as f:
                found = blocks(f.read())
            if not found:
                continue
            page_dir = os.path.join(scratch, rel.replace("/", "_"))
            modules = []
            for b in found:
                m = MODULE_NAME.match(b["body"].split("\n", 1)[0])
                if m and "fragment" not in b["marks"]:
                    modules.append((m.group(1), b["body"]))
            for n, b in enumerate(found, 1):
                where = "%s:%d" % (rel, b["line"])
                # A folder per sample (what one writes, bot.db, is not the
                # next one's), with the files the page's samples require.
                folder = os.path.join(page_dir, str(n))
                os.makedirs(folder)
                for mod, body in modules:
                    path = os.path.join(folder, mod)
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    with open(path, "w", encoding="utf-8") as f:
                        f.write(body)
                name = "sample%d.lua" % n
                path = os.path.join(folder, name)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(b["body"])
                if "fragment" in b["marks"]:
                    counts["fragment"] += 1
                    env_cmd = ["env", "TGHOST_DOC_FRAGMENT=" + path,
                               "TGHOST_DOC_NAME=" + where]
                    loader = os.path.join(folder, "compile.lua")
                    with open(loader, "w", encoding="utf-8") as f:
                        f.write(COMPILE)
                    rc, out = run(env_cmd + [tghost, loader], folder)
                    if rc != 0:
                        failures.append("%s: the fragment does not compile:\n%s" % (where, out))
                    continue
                rc, out = run([tghost, "--check", name], folder)
                bad = [l for l in out.splitlines()
                       if l.strip() and not CHECK_FINE.search(l)
                       and re.search(r"\b(WARN|ERROR|error)\b|^tghost: ", l)]
                if RUN_CALL.search(b["body"]) and "calls run()" not in out:
                    # It calls run(), yet tghost says the bot would not start
                    # (a handle stopped at the top level, say).
                    bad.append("the sample calls run() but tghost says it does not start the bot")
                if rc != 0 or bad:
                    failures.append("%s: tghost --check %s:\n%s" % (where, "failed (status %d)" % rc
                                    if rc else "warned", out))
                    continue
                has_handlers = bool(HANDLERS.search(b["body"]))
                if "script" in b["marks"]:
                    # A test script (bot.handleUpdate, asserts): run as is.
                    rc, out = run([tghost, "--no-watch", name], folder)
                    if rc != 0:
                        failures.append("%s: the script failed (status %d):\n%s" % (where, rc, out))
                    else:
                        counts["script"] += 1
                    continue
                if "check" in b["marks"] or (MODULE_NAME.match(b["body"].split("\n", 1)[0])
                                             and b["chat"] is None):
                    counts["check"] += 1
                    continue
                if b["chat"] is None:
                    if has_handlers:
                        failures.append("%s: the sample registers handlers but has no transcript "
                                        "(a ```chat block or <!-- chat ... --> after it; or mark "
                                        "it ```lua check and say why it cannot run in the sandbox)"
                                        % where)
                    else:
                        counts["check"] += 1
                    continue
                if not RUN_CALL.search(b["body"]):
                    failures.append("%s: the sample has a transcript but never calls run(bot)" % where)
                    continue
                chat = os.path.join(folder, "sample%d.chat" % n)
                with open(chat, "w", encoding="utf-8") as f:
                    f.write(b["chat"])
                rc, out = run([tghost, "--no-watch", "--sandbox", name, "--script",
                               os.path.basename(chat)], folder, timeout=120,
                              # ${TGHOST_DOC_SAMPLE} in a transcript: a file to send
                              extra_env={"TGHOST_DOC_SAMPLE": name})
                if rc != 0:
                    failures.append("%s: its transcript failed (status %d):\n%s" % (where, rc, out))
                    continue
                counts["transcript"] += 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    total = sum(counts.values())
    print("docs.samples: %d Lua samples in README.md and docs/: %d run with a transcript, "
          "%d test scripts run, %d checked with --check, %d fragments compiled"
          % (total, counts["transcript"], counts["script"], counts["check"], counts["fragment"]))
    for f in failures:
        print("FAIL " + f)
    return 1 if failures or total == 0 else 0


def slug(text):
    s = text.strip().lower()
    s = re.sub(r"`", "", s)
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors(path):
    seen = {}
    out = set()
    fenced = False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("```"):
                fenced = not fenced
                continue
            if fenced or not re.match(r"^#{1,6} ", line):
                continue
            s = slug(line.lstrip("#"))
            if s in seen:
                seen[s] += 1
                out.add("%s-%d" % (s, seen[s]))
            else:
                seen[s] = 0
                out.add(s)
    return out


LINK = re.compile(r"\]\(([^)\s]+)\)")


def links(root):
    failures = []
    checked = 0
    for page in pages(root):
        rel = os.path.relpath(page, root)
        fenced = False
        with open(page, encoding="utf-8") as f:
            lines = f.readlines()
        for n, line in enumerate(lines, 1):
            if line.startswith("```"):
                fenced = not fenced
                continue
            if fenced:
                continue
            text = re.sub(r"`[^`]*`", "", line)
            for m in LINK.finditer(text):
                target = m.group(1)
                if re.match(r"^[a-z]+:", target):
                    continue
                checked += 1
                path, _, frag = target.partition("#")
                dest = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
                if not os.path.exists(dest):
                    failures.append("%s:%d: %s: no such file" % (rel, n, target))
                    continue
                if frag and dest.endswith(".md") and frag not in anchors(dest):
                    failures.append("%s:%d: %s: %s has no heading with that anchor"
                                    % (rel, n, target, os.path.relpath(dest, root)))
    print("docs.links: %d relative links in README.md and docs/" % checked)
    for f in failures:
        print("FAIL " + f)
    return 1 if failures or checked == 0 else 0


def options(tghost, root):
    out = subprocess.run([tghost, "--help"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT).stdout.decode()
    names = sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]+)", out)))
    with open(os.path.join(root, "docs", "reference", "options.md"), encoding="utf-8") as f:
        page = f.read()
    missing = [n for n in names if not re.search(re.escape(n) + r"(?![\w-])", page)]
    print("docs.options: %d options in tghost --help" % len(names))
    for n in missing:
        print("FAIL docs/reference/options.md does not describe %s (tghost --help lists it)" % n)
    return 1 if missing or not names else 0


def main(argv):
    if len(argv) == 3 and argv[0] == "samples":
        return samples(os.path.abspath(argv[1]), argv[2])
    if len(argv) == 2 and argv[0] == "links":
        return links(argv[1])
    if len(argv) == 3 and argv[0] == "options":
        return options(argv[1], argv[2])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
