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
from typing import Any

from .config import DataConfig
from .heldout import HELDOUT_FRACTION, hash_fraction
from .pair_files import PairFile, PairsError, changed_files, read_pairs

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
OTHER = {"val": "test", "test": "val"}  # the other held-out split


def inputs_of(pairs: list[tuple[str, str]]) -> set[str]:
    """The distinct inputs of ``pairs``."""
    return {source for source, _ in pairs}


def in_slice(text: str, split: str, data_seed: int) -> bool:
    """Whether ``text`` falls in the ``split`` half of the held-out slice (:data:`PAIR_SLICES`)."""
    lo, hi = PAIR_SLICES[split]
    return lo <= hash_fraction(text, data_seed) < hi


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


FilesRead = dict[str, tuple[list[tuple[str, str]], PairFile]]  # role -> its pairs and record


def _pairs_of(cfg: DataConfig, role: str, max_bytes: int, files_read: FilesRead
              ) -> list[tuple[str, str]]:
    """The pairs of the ``role`` file, read once: ``files_read`` keeps them with its record."""
    if role not in files_read:
        files_read[role] = read_pairs(getattr(cfg, f"{role}_file"), role, max_bytes,
                                      cfg.skip_bad_lines)
    return files_read[role][0]


def held_out_pairs(cfg: DataConfig, split: str, max_bytes: int,
                   files_read: FilesRead | None = None
                   ) -> tuple[dict[str, list[str]], list[PairFile]]:
    """Input -> accepted outputs of ``split`` (``"val"`` or ``"test"``) and the records of the
    files read: the split's own file when the config names one, else its slice of the training
    file by the hash of the input (:func:`in_slice`), less the inputs of the other split's own
    file, so that an input never lands in two splits. At most ``val_samples``/``test_samples``
    inputs, chosen by hash. ``files_read``: the files read so far (this call adds those it
    reads), each read once; the records are of all of them."""
    files_read = {} if files_read is None else files_read
    if getattr(cfg, f"{split}_file"):
        pairs = _pairs_of(cfg, split, max_bytes, files_read)
    else:
        pairs = [p for p in _pairs_of(cfg, "train", max_bytes, files_read)
                 if in_slice(p[0], split, cfg.data_seed)]
        if getattr(cfg, f"{OTHER[split]}_file"):
            other = inputs_of(_pairs_of(cfg, OTHER[split], max_bytes, files_read))
            pairs = [p for p in pairs if p[0] not in other]
    records = [record for _, record in files_read.values()]
    grouped = group_outputs(pairs)
    keep = sorted(grouped, key=lambda x: hash_fraction(x, cfg.data_seed + 1))
    keep = set(keep[:getattr(cfg, f"{split}_samples")])
    return {x: outputs for x, outputs in grouped.items() if x in keep}, records


def _own_inputs(files_read: FilesRead, split: str) -> set[str]:
    """Every input of ``split``'s own file (none if it has none), not only those sampled."""
    return inputs_of(files_read[split][0]) if split in files_read else set()


def _overlap_notes(cfg: DataConfig, files_read: FilesRead, val: dict[str, list[str]],
                   test: dict[str, list[str]]) -> list[str]:
    """Notes on inputs that the held-out sets' own files share with the training file (which
    training leaves out) and with each other."""
    notes = []
    train_inputs = inputs_of(files_read["train"][0])
    for split in ("val", "test"):
        taken = len(train_inputs & _own_inputs(files_read, split))
        if taken:
            inputs = "input" if taken == 1 else "inputs"
            notes.append(f"{taken} {inputs} of {cfg.train_file} are also in "
                         f"{getattr(cfg, f'{split}_file')}: training leaves them out")
    both = len(val.keys() & test.keys())  # only when both have files of their own
    if both:
        notes.append(f"{both} inputs are in both {cfg.val_file} and {cfg.test_file}: the test "
                     "set scores inputs that chose the best checkpoint")
    return notes


def _empty_slice(cfg: DataConfig, split: str, train: list[tuple[str, str]]) -> str:
    """Why the ``split`` slice of the training file holds no input."""
    inputs = inputs_of(train)
    n = sum(in_slice(x, split, cfg.data_seed) for x in inputs)
    if n:  # all of them in the other split's own file
        return (f"the {n} inputs of its {SPLIT_NAMES[split]} slice are all in "
                f"{getattr(cfg, f'{OTHER[split]}_file')}")
    return f"none of its {len(inputs)} inputs falls in the {SPLIT_NAMES[split]} slice"


def pair_splits(cfg: DataConfig, max_bytes: int) -> PairSplits:
    """All of the ``pairs`` task's data (:func:`held_out_pairs`); training gets every distinct
    pair of the training file whose input is in neither held-out split: neither in a slice nor
    in a split's own file (all of it, not only the inputs sampled from it).
    No validation pair is an error; no test pair (``eval.py`` would have nothing to score) and
    bad lines skipped are ``notes``."""
    files_read: FilesRead = {}
    train = _pairs_of(cfg, "train", max_bytes, files_read)
    val, _ = held_out_pairs(cfg, "val", max_bytes, files_read)
    test, files = held_out_pairs(cfg, "test", max_bytes, files_read)  # each file once
    if not val:
        raise PairsError(f"{cfg.train_file}: no validation pairs: "
                         f"{_empty_slice(cfg, 'val', train)}; give more pairs or a --val-file")
    sliced = [s for s in ("val", "test") if not getattr(cfg, f"{s}_file")]
    held = _own_inputs(files_read, "val") | _own_inputs(files_read, "test")

    def trains(x: str) -> bool:
        return x not in held and not any(in_slice(x, s, cfg.data_seed) for s in sliced)

    kept = [p for p in dict.fromkeys(train) if trains(p[0])]
    if not kept:
        raise PairsError(f"{cfg.train_file}: no training pairs left after the held-out sets")
    seen = sorted(set("".join(x for x, _ in kept).encode("utf-8", "surrogatepass")))
    notes = [r.skip_note() for r in files if r.skipped] + _overlap_notes(cfg, files_read, val,
                                                                         test)
    if not test:  # only a slice can be empty: a --test-file without pairs is an error
        notes.append(f"{cfg.train_file}: no test pairs: {_empty_slice(cfg, 'test', train)}, so "
                     "eval.py has no test set; give more pairs or a --test-file")
    return PairSplits(kept, val, test, files, seen, notes)


def trained_on_note(cfg: DataConfig, inputs: list[str], path: str, max_bytes: int,
                    recorded: Any) -> str | None:
    """A note if some of ``inputs`` (read from ``path``) are among those a run with ``cfg``
    trained on (its files read again, and checked against ``recorded``, the checkpoint's
    ``data_files``): their scores say little about new inputs."""
    try:
        splits = pair_splits(cfg, max_bytes)
    except PairsError as e:
        return f"cannot tell which inputs of {path} the model trained on: {e}"
    changed = changed_files(recorded, splits.files)
    if changed:
        return (f"cannot tell which inputs of {path} the model trained on: {changed[0].name} "
                "changed since training")
    trained = inputs_of(splits.train)
    n = sum(x in trained for x in inputs)
    return (f"{n:,} of the {len(inputs):,} inputs of {path} are among those the model trained "
            f"on (from {cfg.train_file}): their scores say little about new inputs") if n else None
