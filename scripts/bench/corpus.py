#!/usr/bin/env python3
"""Writes the sentence pool for scripts/bench/generate.sql as COPY text on stdout:
`id <TAB> text`, ids from 0. Usage: corpus.py [N]   (default 100,000 sentences)

The words come from real English prose, the Python language reference that ships with
python3 (pydoc_data.topics, standard library): each sentence is a span of 4..24 consecutive
words from it, so text in the benchmark compresses like prose (about 3x with gzip) instead of
like a handful of repeated strings. Some sentences are made to look like what issue trackers
hold: quoted replies, code blocks with tabs and backslashes, stack-trace lines, URLs,
non-ASCII names, emoji. Deterministic: the same N gives the same pool.
"""

import random
import re
import sys

from pydoc_data.topics import topics


def words():
    text = " ".join(topics[k] for k in sorted(topics))
    text = re.sub(r"[*=~^-]{3,}", " ", text)   # reST underlines
    return [w for w in text.split() if len(w) < 40]


NAMES = ["Zoë", "Søren", "Chloé", "Jürgen", "Inès", "Núñez", "Øyvind", "Łukasz", "Ümit",
         "Beyoncé", "François", "Dvořák", "Mía", "Hiroshi (宏)", "Eun-ji (은지)", "Ольга", "Αλέξης"]
EMOJI = ["👍", "🎉", "🚀", "🙏", "😕", "🔥", "✅", "❌", "☕"]
FILES = ["src/app/billing.py", "lib/export/csv.rb", "web/static/js/editor.js", "cmd/sync/main.go",
         "C:\\Users\\ops\\AppData\\Local\\app\\log.txt", "config\\prod\\settings.ini"]


def escape(s):
    return (s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r"))


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    rng = random.Random(5)
    ws = words()
    out = sys.stdout
    for i in range(n):
        length = rng.randint(4, 24)
        start = rng.randrange(0, len(ws) - length)
        s = " ".join(ws[start:start + length])
        s = s[0].upper() + s[1:]
        if s[-1] not in ".?!:":
            s += rng.choice([".", ".", ".", "?", "!", ":"])
        kind = rng.random()
        if kind < 0.06:
            ident = rng.choice(ws[start:start + length]).strip("\"'().,:;")
            s = (f"```\n{ident or 'x'} = load(\"{rng.choice(FILES)}\")\t# {s}\n"
                 f"if {ident or 'x'} is None:\n\traise ValueError(\"missing \\\\N or \\\\t\")\n```")
        elif kind < 0.10:
            s = f"> {s}\n"
        elif kind < 0.14:
            s = (f"Traceback (most recent call last):\n  File \"{rng.choice(FILES)}\", line "
                 f"{rng.randint(1, 2000)}, in run\n{rng.choice(['KeyError', 'TimeoutError', 'ValueError'])}: {s}")
        elif kind < 0.18:
            s = f"{s} See https://tracker.example.com/issues/{rng.randint(1000, 999999)}?tab=activity#c{rng.randint(1, 99)}"
        elif kind < 0.24:
            s = f"{rng.choice(NAMES)}: {s} {rng.choice(EMOJI)}"
        elif kind < 0.27:
            s = f"{s}\r\n(sent from a Windows mail client, build {rng.randint(10000, 99999)}.{rng.randint(0, 999)})"
        out.write(f"{i}\t{escape(s)}\n")


if __name__ == "__main__":
    main()
