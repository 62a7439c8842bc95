"""Write evaluation lines cut from natural text that ships with the operating system.

English: the licence texts in /usr/share/common-licenses. Multilingual: the translated messages
of the gettext catalogues in /usr/share/locale (real sentences by human translators), the same
number of pieces from each of the languages in ``LANGS``. Lines are cut at word boundaries into
pieces of ``--min-len``..``--max-len`` characters; nothing here is used for training.

Mixed: long lines that switch script, made by joining such pieces of messages in languages drawn
at random. ASCII: random printable ASCII drawn here, with Python's ``random`` (not by the
project's training generator).

    python benchmarks/text_corpus.py english --out runs/english.txt
    python benchmarks/text_corpus.py multilingual --out runs/multilingual.txt
    python benchmarks/text_corpus.py mixed --min-len 1000 --max-len 1300 --n 100 --out m.txt
    python benchmarks/text_corpus.py ascii --min-len 500 --max-len 500 --n 100 --out a.txt
"""

from __future__ import annotations

import argparse
import gettext
import random
import re
import string
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from transformer_tiny.utils import atomic_write_text

LANGS = ("de", "fr", "es", "pt", "it", "pl", "cs", "sv", "tr", "ru", "uk", "el", "ja", "zh_CN",
         "zh_TW", "ko", "vi")
NON_LATIN = ("ru", "uk", "el", "ja", "zh_CN", "zh_TW", "ko")


def english_texts() -> list[str]:
    root = Path("/usr/share/common-licenses")
    return [p.read_text(errors="ignore") for p in sorted(root.glob("*")) if p.is_file()]


def multilingual_texts(lang: str) -> list[str]:
    """The translated messages of every gettext catalogue of ``lang``."""
    messages = []
    for f in sorted(Path("/usr/share/locale", lang, "LC_MESSAGES").glob("*.mo")):
        try:
            with f.open("rb") as fh:
                catalog = gettext.GNUTranslations(fh)._catalog
        except Exception:  # a catalogue that cannot be read is skipped
            continue
        messages += [v for v in catalog.values() if isinstance(v, str) and len(v) >= 8]
    return messages


def pieces(text: str, lo: int, hi: int, rng: random.Random) -> list[str]:
    """Cut ``text`` (whitespace folded, format codes dropped) into word-boundary pieces."""
    words = re.sub(r"%[-#0-9.]*[a-zA-Z]|[\x00-\x1f]", " ", text).split()
    out, cur, want = [], "", rng.randint(lo, hi)
    for w in words:
        nxt = f"{cur} {w}" if cur else w
        if len(nxt) > want:
            if lo <= len(cur) <= hi:
                out.append(cur)
            cur, want = (w if len(w) <= hi else ""), rng.randint(lo, hi)
        else:
            cur = nxt
    if lo <= len(cur) <= hi:
        out.append(cur)
    return out


def english_lines(lo: int, hi: int, n: int, rng: random.Random) -> list[str]:
    lines = sorted({x for t in english_texts() for x in pieces(t, lo, hi, rng)})
    rng.shuffle(lines)
    return lines[:n]


def multilingual_lines(lo: int, hi: int, n: int, rng: random.Random) -> list[str]:
    """The same number of pieces from each language."""
    lines = []
    for lang in LANGS:
        texts = multilingual_texts(lang)
        rng.shuffle(texts)
        own = sorted({x for t in texts[:2000] for x in pieces(t, lo, hi, rng)})
        rng.shuffle(own)
        lines += own[: n // len(LANGS)]
    rng.shuffle(lines)
    return lines


def mixed_lines(lo: int, hi: int, n: int, rng: random.Random) -> list[str]:
    """Lines of ``lo``..``hi`` characters and 2 to 4 bytes per character on average, joined from
    pieces (of up to 64 characters) of messages in languages drawn at random, three in four from
    the languages not written in Latin script, so that one line switches script many times."""
    pool = {lang: multilingual_texts(lang) for lang in LANGS}
    lines = []
    while len(lines) < n:
        want, line = rng.randint(lo, hi), ""
        while len(line) < want:
            langs = NON_LATIN if rng.random() < 0.75 else LANGS
            text = rng.choice(pool[rng.choice(langs)])
            line = f"{line} {' '.join(pieces(text, 1, 64, rng)[:1])}".strip()
        line = line[:want].rstrip()
        if lo <= len(line) and 2 * len(line) <= len(line.encode()) <= 4 * len(line):
            lines.append(line)
    return lines


def ascii_lines(lo: int, hi: int, n: int, rng: random.Random) -> list[str]:
    printable = string.printable.strip() + " "  # 95 characters: no tabs or line breaks
    return [''.join(rng.choices(printable, k=rng.randint(lo, hi))) for _ in range(n)]


KINDS = {"english": english_lines, "multilingual": multilingual_lines, "mixed": mixed_lines,
         "ascii": ascii_lines}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--out", required=True)
    p.add_argument("--min-len", type=int, default=1)
    p.add_argument("--max-len", type=int, default=32)
    p.add_argument("--n", type=int, default=2000, help="lines to write (at most)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    lines = KINDS[args.kind](args.min_len, args.max_len, args.n, random.Random(args.seed))
    atomic_write_text(args.out, "".join(line + "\n" for line in lines))
    sizes = sorted(len(line) for line in lines) or [0]
    print(f"wrote {len(lines)} lines of {sizes[0]}-{sizes[-1]} characters to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
