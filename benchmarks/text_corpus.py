"""Write evaluation lines cut from natural text that ships with the operating system.

English: the licence texts in /usr/share/common-licenses. Multilingual: the translated messages
of the gettext catalogues in /usr/share/locale (real sentences by human translators), the same
number of pieces from each of the languages in ``LANGS``. Lines are
cut at word boundaries into pieces of ``--min-len``..``--max-len`` characters; nothing here is
used for training.

    python benchmarks/text_corpus.py english --out runs/english.txt
    python benchmarks/text_corpus.py multilingual --out runs/multilingual.txt
"""

from __future__ import annotations

import argparse
import gettext
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from transformer_tiny.utils import atomic_write_text

LANGS = ("de", "fr", "es", "pt", "it", "pl", "cs", "sv", "tr", "ru", "uk", "el", "ja", "zh_CN",
         "zh_TW", "ko", "vi")


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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("kind", choices=("english", "multilingual"))
    p.add_argument("--out", required=True)
    p.add_argument("--min-len", type=int, default=1)
    p.add_argument("--max-len", type=int, default=32)
    p.add_argument("--n", type=int, default=2000, help="lines to write (at most)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rng = random.Random(args.seed)
    if args.kind == "english":
        lines = sorted({x for t in english_texts() for x in pieces(t, args.min_len, args.max_len,
                                                                   rng)})
        rng.shuffle(lines)
        lines = lines[: args.n]
    else:  # the same number of pieces from each language
        lines = []
        for lang in LANGS:
            texts = multilingual_texts(lang)
            rng.shuffle(texts)
            own = sorted({x for t in texts[:2000] for x in pieces(t, args.min_len, args.max_len,
                                                                    rng)})
            rng.shuffle(own)
            lines += own[: args.n // len(LANGS)]
        rng.shuffle(lines)
    atomic_write_text(args.out, "".join(line + "\n" for line in lines))
    print(f"wrote {len(lines)} lines to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
