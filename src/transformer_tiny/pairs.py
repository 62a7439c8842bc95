"""The ``pairs`` task's splits: training, validation and test pairs from files of pairs
(:mod:`transformer_tiny.pair_files` reads and checks them).

Validation and test pairs come from their own files when given. Without its own file, each of
the two takes up to ``val_samples``/``test_samples`` inputs, with every output they have, from
its slice of the training file's hash range (:data:`PAIR_SLICES`: the held-out slice of
:mod:`~transformer_tiny.heldout` cut in two halves); an input in either slice never trains, nor
does any input of a split's own file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import DataConfig
from .heldout import HELDOUT_FRACTION, hash_fraction
from .pair_files import PairFile, PairsError, read_pairs

SPLIT_NAMES = {"val": "validation", "test": "test"}


def group_outputs(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Input -> its accepted outputs, each once, in file order."""
    grouped: dict[str, list[str]] = {}
    for source, target in pairs:
        outputs = grouped.setdefault(source, [])
        if target not in outputs:
            outputs.append(target)
    return grouped


# ----------------------------------------------------------------------------- the splits
PAIR_SLICES = {"val": (0.0, HELDOUT_FRACTION / 2), "test": (HELDOUT_FRACTION / 2, HELDOUT_FRACTION)}


@dataclass
class PairSplits:
    """The ``pairs`` task's data: training pairs, and input -> accepted outputs of the held-out
    sets; ``files`` are the records of the files read, ``input_bytes`` the bytes the training
    inputs hold (what the model has seen), ``notes`` what training should warn about."""

    train: list[tuple[str, str]]
    val: dict[str, list[str]]
    test: dict[str, list[str]]
    files: list[PairFile]
    input_bytes: list[int]  # every byte value of the training inputs, sorted
    notes: list[str] = field(default_factory=list)  # one line each, without "warning: "


Read = dict[str, tuple[list[tuple[str, str]], PairFile]]  # role -> a file's pairs and record


def _read(cfg: DataConfig, role: str, max_bytes: int, read: Read) -> list[tuple[str, str]]:
    """The pairs of the ``role`` file, read once: ``read`` keeps them with the file's record."""
    if role not in read:
        read[role] = read_pairs(getattr(cfg, f"{role}_file"), role, max_bytes,
                                cfg.skip_bad_lines)
    return read[role][0]


def held_out_pairs(cfg: DataConfig, split: str, max_bytes: int, read: Read | None = None
                   ) -> tuple[dict[str, list[str]], list[PairFile]]:
    """Input -> accepted outputs of ``split`` (``"val"`` or ``"test"``) and the records of the
    files read: the split's own file when the config names one, else its slice of the training
    file by the hash of the input (:data:`PAIR_SLICES`: half of the held-out slice each), less
    the inputs of the other split's own file, so that an input never lands in two splits. At
    most ``val_samples``/``test_samples`` inputs, chosen by hash. ``read``: the files read
    so far (this call adds those it reads), each read once; the records are of all of them."""
    read = {} if read is None else read
    if getattr(cfg, f"{split}_file"):
        pairs = _read(cfg, split, max_bytes, read)
    else:
        lo, hi = PAIR_SLICES[split]
        pairs = [p for p in _read(cfg, "train", max_bytes, read)
                 if lo <= hash_fraction(p[0], cfg.data_seed) < hi]
        other = "test" if split == "val" else "val"
        if getattr(cfg, f"{other}_file"):
            inputs = {source for source, _ in _read(cfg, other, max_bytes, read)}
            pairs = [p for p in pairs if p[0] not in inputs]
    records = [record for _, record in read.values()]
    grouped = group_outputs(pairs)
    keep = sorted(grouped, key=lambda x: hash_fraction(x, cfg.data_seed + 1))
    keep = set(keep[:getattr(cfg, f"{split}_samples")])
    return {x: outputs for x, outputs in grouped.items() if x in keep}, records


def _own_inputs(read: Read, split: str) -> set[str]:
    """Every input of ``split``'s own file (none if it has none), not only those sampled."""
    return {x for x, _ in read[split][0]} if split in read else set()


def _overlap_notes(cfg: DataConfig, read: Read, val: dict[str, list[str]],
                   test: dict[str, list[str]]) -> list[str]:
    """Notes on inputs that the held-out sets' own files share with the training file (which
    training leaves out) and with each other."""
    notes = []
    train_inputs = {x for x, _ in read["train"][0]}
    for split in ("val", "test"):
        taken = len(train_inputs & _own_inputs(read, split))
        if taken:
            notes.append(f"{taken} inputs of {cfg.train_file} are also in "
                         f"{getattr(cfg, f'{split}_file')}: training leaves them out")
    both = len(val.keys() & test.keys())  # only when both have files of their own
    if both:
        notes.append(f"{both} inputs are in both {cfg.val_file} and {cfg.test_file}: the test "
                     "set scores inputs that chose the best checkpoint")
    return notes


def _empty_slice(cfg: DataConfig, split: str, train: list[tuple[str, str]]) -> str:
    """Why the ``split`` slice of the training file holds no input."""
    lo, hi = PAIR_SLICES[split]
    inputs = group_outputs(train)
    in_slice = sum(lo <= hash_fraction(x, cfg.data_seed) < hi for x in inputs)
    other = "test" if split == "val" else "val"
    if in_slice:  # all of them in the other split's own file
        return (f"the {in_slice} inputs of its {SPLIT_NAMES[split]} slice are all in "
                f"{getattr(cfg, f'{other}_file')}")
    return f"none of its {len(inputs)} inputs falls in the {SPLIT_NAMES[split]} slice"


def pair_splits(cfg: DataConfig, max_bytes: int) -> PairSplits:
    """All of the ``pairs`` task's data (:func:`held_out_pairs`); training gets every distinct
    pair of the training file whose input is in neither held-out split: neither in a slice nor
    in a split's own file (all of it, not only the inputs sampled from it).
    No validation pair is an error; no test pair (``eval.py`` would have nothing to score) and
    bad lines skipped are ``notes``."""
    read: Read = {}
    train = _read(cfg, "train", max_bytes, read)
    val, _ = held_out_pairs(cfg, "val", max_bytes, read)
    test, _ = held_out_pairs(cfg, "test", max_bytes, read)
    if not val:
        raise PairsError(f"{cfg.train_file}: no validation pairs: "
                         f"{_empty_slice(cfg, 'val', train)}; give more pairs or a --val-file")
    slices = [PAIR_SLICES[s] for s in ("val", "test") if not getattr(cfg, f"{s}_file")]
    held = _own_inputs(read, "val") | _own_inputs(read, "test")

    def trains(x: str) -> bool:
        h = hash_fraction(x, cfg.data_seed)
        return x not in held and not any(lo <= h < hi for lo, hi in slices)

    kept = [p for p in dict.fromkeys(train) if trains(p[0])]
    if not kept:
        raise PairsError(f"{cfg.train_file}: no training pairs left after the held-out sets")
    seen = sorted(set("".join(x for x, _ in kept).encode("utf-8", "surrogatepass")))
    files = [record for _, record in read.values()]  # each file once, train first
    notes = [r.skip_note() for r in files if r.skipped] + _overlap_notes(cfg, read, val, test)
    if not test:  # only a slice can be empty: a --test-file without pairs is an error
        notes.append(f"{cfg.train_file}: no test pairs: {_empty_slice(cfg, 'test', train)}, so "
                     "eval.py has no test set; give more pairs or a --test-file")
    return PairSplits(kept, val, test, files, seen, notes)


def trained_on_note(cfg: DataConfig, inputs: list[str], path: str, max_bytes: int) -> str | None:
    """A note if some of ``inputs`` (read from ``path``) are among those a run with ``cfg``
    trained on (its training file read again): their scores say little about new inputs."""
    try:
        trained = {x for x, _ in pair_splits(cfg, max_bytes).train}
    except PairsError as e:
        return f"cannot tell which inputs of {path} the model trained on: {e}"
    n = sum(x in trained for x in inputs)
    return (f"{n:,} of the {len(inputs):,} inputs of {path} are among those the model trained "
            f"on (from {cfg.train_file}): their scores say little about new inputs") if n else None
