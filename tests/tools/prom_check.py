#!/usr/bin/python3
"""Parses tghost's /metrics output (the file given) with the Prometheus
client library's text-format parser (Debian's python3-prometheus-client),
checks what that parser lets through, and prints every sample as

    name{label="value",...} value

with the labels sorted, one per line, for the C test to compare.

Exit status: 0 valid, 1 invalid (the reason on stderr), 77 when the parser
is not installed (the test is then skipped).
"""
import math
import re
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    print("prometheus_client is not installed (python3-prometheus-client)",
          file=sys.stderr)
    sys.exit(77)

NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def fail(message):
    print("invalid metrics: " + message, file=sys.stderr)
    sys.exit(1)


def main():
    text = open(sys.argv[1], encoding="utf-8").read()
    if not text.endswith("\n"):
        fail("the output does not end with a newline")
    # What the parser is lenient about: every family has HELP and TYPE,
    # once, before its samples.
    helps, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            if name in helps:
                fail("HELP twice for " + name)
            helps[name] = line
        elif line.startswith("# TYPE "):
            parts = line.split(" ")
            if len(parts) != 4:
                fail("bad TYPE line: " + line)
            if parts[2] not in helps:
                fail("TYPE before HELP for " + parts[2])
            types[parts[2]] = parts[3]
        elif line.startswith("#") or not line.strip():
            fail("unexpected line: %r" % line)
    families = list(text_string_to_metric_families(text))
    if not families:
        fail("no metric families")
    seen = set()
    out = []
    for family in families:
        if not family.documentation:
            fail(family.name + " has no HELP text")
        if family.type == "unknown":
            fail(family.name + " has no TYPE")
        if family.type == "counter" and family.name + "_total" not in types:
            fail("counter %s is not named *_total" % family.name)
        if not family.name.startswith("tghost_"):
            fail(family.name + " is not prefixed tghost_")
        buckets = {}
        counts = {}
        for s in family.samples:
            if not NAME.match(s.name):
                fail("bad metric name " + s.name)
            for label in s.labels:
                if not LABEL.match(label):
                    fail("bad label name %s in %s" % (label, s.name))
            key = (s.name, tuple(sorted(s.labels.items())))
            if key in seen:
                fail("duplicate series %r" % (key,))
            seen.add(key)
            if math.isnan(s.value):
                fail("NaN in " + s.name)
            if family.type == "counter" and s.value < 0:
                fail("negative counter " + s.name)
            if family.type == "histogram":
                rest = tuple(sorted((k, v) for k, v in s.labels.items()
                                    if k != "le"))
                if s.name.endswith("_bucket"):
                    buckets.setdefault(rest, []).append(
                        (float(s.labels["le"]), s.value))
                elif s.name.endswith("_count"):
                    counts[rest] = s.value
            labels = ",".join('%s="%s"' % (k, v.replace("\\", "\\\\")
                                           .replace('"', '\\"')
                                           .replace("\n", "\\n"))
                              for k, v in sorted(s.labels.items()))
            value = s.value
            text_value = ("%d" % value if value == int(value)
                          and abs(value) < 2 ** 53 else repr(value))
            out.append("%s{%s} %s" % (s.name, labels, text_value))
        for rest, series in buckets.items():
            if series != sorted(series):
                fail("%s: buckets out of order" % family.name)
            values = [v for _, v in series]
            if values != sorted(values):
                fail("%s: a bucket count decreases" % family.name)
            if not math.isinf(series[-1][0]):
                fail("%s: no +Inf bucket" % family.name)
            if counts.get(rest) != values[-1]:
                fail("%s: +Inf bucket %s != count %s" % (family.name,
                                                         values[-1],
                                                         counts.get(rest)))
    print("\n".join(out))


main()
