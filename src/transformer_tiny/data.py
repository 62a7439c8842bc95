"""Data for the toy tasks: deterministic string sets, tensors, and dataloaders.

Each example is a pair of id sequences. With ``x`` the input's bytes and ``y`` the output's:

* ``src     = BOS x EOS``      encoder input
* ``tgt_in  = BOS y``          decoder input (teacher forcing)
* ``tgt_out = y EOS``          what the decoder must predict at each position

Batches are right-padded with PAD.

**Held-out split.** A fixed slice of all strings is held out: a string belongs to it when its hash
(keyed by ``data_seed``) falls in the first ``HELDOUT_FRACTION`` of the hash range. Validation and
test inputs come only from that slice (distinct, and disjoint from each other); training inputs
never do. Being a property of the string, not of a drawn list, the split keeps every length in
training, even lengths with only a handful of strings (``parens`` has four balanced strings of
length 2). Training strings are drawn afresh each epoch, independently, as the task's generator
gives them (repeats allowed): forcing them distinct would starve training of short strings.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset

from .alphabets import ALPHABETS
from .config import DataConfig, ModelConfig
from .pairs import PairFile, group_outputs, read_pairs
from .tasks import Task, get_task, task_for
from .tokenizer import ByteTokenizer

_SPLIT_SALT = {"val": 1, "test": 2, "train": 3, "train-hard": 4}
HELDOUT_FRACTION = 0.1  # share of all strings reserved for validation and test


def hash_fraction(text: str, data_seed: int) -> float:
    """Where ``text`` falls in ``[0, 1)`` by its hash keyed by ``data_seed``."""
    key = f"{data_seed}\0{text}".encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2**64


def is_heldout(text: str, data_seed: int) -> bool:
    """Whether ``text`` is in the held-out slice of ``data_seed`` (see the module docstring)."""
    return hash_fraction(text, data_seed) < HELDOUT_FRACTION


def draw_inputs(cfg: DataConfig, n: int, seed: int, heldout: bool | None = None,
                distinct: bool = True, exclude: set[str] | frozenset = frozenset(),
                min_len: int | None = None, max_len: int | None = None,
                alphabet: str | None = None, hard: bool = False) -> list[str]:
    """``n`` task inputs, deterministic in ``seed``, none of them in ``exclude``.

    ``heldout``: True draws only from the held-out slice (:func:`is_heldout`), False never from
    it, None from all strings. ``distinct`` avoids repeats, as far as the space of strings allows
    (if it is too small for ``n`` distinct ones, repeats are allowed). ``min_len``/``max_len``/
    ``alphabet`` override the config (used to evaluate other lengths). ``hard`` draws from the
    task's hard slice (``Task.make_hard``) instead of its training generator. Raises
    ``ValueError`` if the allowed strings cannot be found.
    """
    task = task_for(cfg)
    make = task.make_hard if hard else task.make_input
    if make is None:
        raise ValueError(f"task {task.name} has no hard slice")
    chars = ALPHABETS[alphabet if alphabet is not None else cfg.alphabet]
    lo = min_len if min_len is not None else cfg.min_len
    hi = max_len if max_len is not None else cfg.max_len
    rng = random.Random(seed)
    out: list[str] = []
    seen: set[str] = set()
    attempts = candidates = 0
    while len(out) < n:
        text = make(rng, chars, lo, hi)
        attempts += 1
        if attempts > 1000 * n + 100_000:
            where = {True: "in the held-out slice", False: "outside the held-out slice",
                     None: "outside the excluded set"}[heldout]
            raise ValueError(f"cannot draw {n} {task.name} inputs of lengths {lo}-{hi} {where}: "
                             "too few strings")
        if text in exclude or (heldout is not None and is_heldout(text, cfg.data_seed) != heldout):
            continue
        candidates += 1
        if distinct and text in seen and candidates < 20 * n:
            continue
        seen.add(text)
        out.append(text)
    return out


def bucket_inputs(cfg: DataConfig, buckets: list[tuple[int, int]], samples: int,
                  alphabet: str | None = None) -> list[str]:
    """``samples`` fresh inputs per ``(lo, hi)`` length bucket (lengths in characters), drawn
    from all strings (held out or not) with a fixed seed per bucket: the strings that
    ``eval.py --lengths`` and the accuracy-by-length picture score."""
    return [x for k, (lo, hi) in enumerate(buckets)
            for x in draw_inputs(cfg, samples, 10_000 + k, min_len=lo, max_len=hi,
                                 alphabet=alphabet)]


HARD_SEED = 20_000


def hard_inputs(cfg: DataConfig, n: int = 200) -> list[str]:
    """``n`` distinct inputs of the task's hard slice (:attr:`Task.make_hard`), fixed for a
    config; drawn from the held-out slice, so that training on hard draws
    (``DataConfig.hard_share``) never sees them."""
    return draw_inputs(cfg, n, HARD_SEED, heldout=True, hard=True)


def split_seed(cfg: DataConfig, split: str, epoch: int = 0) -> int:
    return cfg.data_seed * 1_000_003 + _SPLIT_SALT[split] * 10_007 + epoch


def heldout_inputs(cfg: DataConfig) -> tuple[list[str], list[str]]:
    """The fixed validation and test inputs: distinct, disjoint, all in the held-out slice."""
    val = draw_inputs(cfg, cfg.val_samples, split_seed(cfg, "val"), heldout=True)
    test = draw_inputs(cfg, cfg.test_samples, split_seed(cfg, "test"), heldout=True,
                       exclude=set(val))
    return val, test


@dataclass
class Example:
    src: list[int]
    tgt: list[int]


class PairDataset(Dataset):
    """(input, expected output) string pairs of a task, tokenized on construction.

    ``task`` is a :class:`Task` or a registered name (with default options); it solves the
    inputs unless ``targets`` gives the outputs (pairs read from files).
    """

    def __init__(self, inputs: list[str], task: str | Task,
                 tokenizer: ByteTokenizer | None = None, targets: list[str] | None = None):
        self.tok = tokenizer or ByteTokenizer()
        task = get_task(task) if isinstance(task, str) else task
        self.inputs = inputs
        self.targets = targets if targets is not None else [task.solve(t) for t in inputs]
        self.examples = [Example(self.tok.encode(x), self.tok.encode(y))
                         for x, y in zip(self.inputs, self.targets, strict=True)]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> Example:
        return self.examples[i]


def collate(batch: list[Example]) -> dict[str, torch.Tensor]:
    """Pad a list of examples into ``src (B, S)``, ``tgt_in (B, T)``, ``tgt_out (B, T)``."""
    tok = ByteTokenizer()
    src, _ = tok.pad_batch([e.src for e in batch], bos=True, eos=True)
    tgt_in, _ = tok.pad_batch([e.tgt for e in batch], bos=True)
    tgt_out, _ = tok.pad_batch([e.tgt for e in batch], eos=True)
    return {"src": src, "tgt_in": tgt_in, "tgt_out": tgt_out}


def length_grouped_order(lengths: list[int], batch_size: int, rng: random.Random) -> list[int]:
    """A shuffled order in which each batch holds examples of similar length (less padding).

    Examples are shuffled, cut into pools of 50 batches, sorted by length inside each pool and
    batched; then the batches are shuffled.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch_size * 50
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lambda i: lengths[i])
        batches += [chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return [i for b in batches for i in b]


# ----------------------------------------------------------------------------- pairs from files
PAIR_SLICES = {"val": (0.0, HELDOUT_FRACTION / 2), "test": (HELDOUT_FRACTION / 2, HELDOUT_FRACTION)}


@dataclass
class PairSplits:
    """The ``pairs`` task's data: training pairs, and input -> accepted outputs of the held-out
    sets; ``files`` are the records of the files read, ``input_bytes`` the bytes the training
    inputs hold (what the model has seen)."""

    train: list[tuple[str, str]]
    val: dict[str, list[str]]
    test: dict[str, list[str]]
    files: list[PairFile]
    input_bytes: list[int]  # every byte value of the training inputs, sorted


def _read(cfg: DataConfig, role: str, max_bytes: int) -> tuple[list[tuple[str, str]], PairFile]:
    return read_pairs(getattr(cfg, f"{role}_file"), role, max_bytes, max_bytes,
                      cfg.skip_bad_lines)


def held_out_pairs(cfg: DataConfig, split: str, max_bytes: int,
                   train: list[tuple[str, str]] | None = None
                   ) -> tuple[dict[str, list[str]], list[PairFile]]:
    """Input -> accepted outputs of ``split`` (``"val"`` or ``"test"``) and the records of the
    files read: the split's own file when the config names one, else its slice of the training
    file by the hash of the input (:data:`PAIR_SLICES`: 5% each), so that an input never lands
    in two splits. At most ``val_samples``/``test_samples`` inputs, chosen by hash."""
    records = []
    if getattr(cfg, f"{split}_file"):
        pairs, record = _read(cfg, split, max_bytes)
        records.append(record)
    else:
        if train is None:
            train, record = _read(cfg, "train", max_bytes)
            records.append(record)
        lo, hi = PAIR_SLICES[split]
        pairs = [p for p in train if lo <= hash_fraction(p[0], cfg.data_seed) < hi]
    grouped = group_outputs(pairs)
    keep = sorted(grouped, key=lambda x: hash_fraction(x, cfg.data_seed + 1))
    keep = set(keep[:getattr(cfg, f"{split}_samples")])
    return {x: outputs for x, outputs in grouped.items() if x in keep}, records


def pair_splits(cfg: DataConfig, max_bytes: int) -> PairSplits:
    """All of the ``pairs`` task's data (:func:`held_out_pairs`); training gets every distinct
    pair of the training file whose input is in neither held-out set (nor in their slices)."""
    train, train_record = _read(cfg, "train", max_bytes)
    val, val_records = held_out_pairs(cfg, "val", max_bytes, train)
    test, test_records = held_out_pairs(cfg, "test", max_bytes, train)
    slices = [PAIR_SLICES[s] for s in ("val", "test") if not getattr(cfg, f"{s}_file")]

    def trains(x: str) -> bool:
        h = hash_fraction(x, cfg.data_seed)
        return x not in val and x not in test and not any(lo <= h < hi for lo, hi in slices)

    kept = [p for p in dict.fromkeys(train) if trains(p[0])]
    if not kept:
        raise ValueError(f"{cfg.train_file}: no training pairs left after the held-out sets")
    seen = sorted(set("".join(x for x, _ in kept).encode("utf-8", "surrogatepass")))
    return PairSplits(kept, val, test, [train_record, *val_records, *test_records], seen)


class DataModule:
    """Builds the datasets and loaders for one :class:`DataConfig`. ``max_positions`` is the
    model's (pairs read from files must fit it)."""

    def __init__(self, cfg: DataConfig, max_positions: int = ModelConfig().max_positions):
        self.cfg = cfg
        self.pairs: PairSplits | None = None
        self._train_set: PairDataset | None = None
        if cfg.task == "pairs":
            self.pairs = pair_splits(cfg, max_positions - 2)
            self.val_inputs, self.test_inputs = list(self.pairs.val), list(self.pairs.test)
        else:
            self.val_inputs, self.test_inputs = heldout_inputs(cfg)

    def references(self, split: str) -> list[list[str]] | None:
        """The accepted outputs of each ``split`` input for pairs read from files (None for a
        task that solves its inputs)."""
        if self.pairs is None:
            return None
        return list((self.pairs.val if split == "val" else self.pairs.test).values())

    @property
    def train_size(self) -> int:
        """Training examples per epoch."""
        return len(self.pairs.train) if self.pairs is not None else self.cfg.train_samples

    def train_dataset(self, epoch: int) -> PairDataset:
        """This epoch's training strings: independent draws from outside the held-out slice, a
        share ``hard_share`` of them by the task's hard-slice generator. For pairs read from
        files: all training pairs, every epoch."""
        cfg = self.cfg
        if self.pairs is not None:
            if self._train_set is None:
                sources, targets = zip(*self.pairs.train, strict=True)
                self._train_set = PairDataset(list(sources), task_for(cfg), None, list(targets))
            return self._train_set
        n_hard = round(cfg.train_samples * cfg.hard_share)
        inputs = draw_inputs(cfg, cfg.train_samples - n_hard, split_seed(cfg, "train", epoch),
                             heldout=False, distinct=False)
        if n_hard:
            inputs += draw_inputs(cfg, n_hard, split_seed(cfg, "train-hard", epoch),
                                  heldout=False, distinct=False, hard=True)
        return PairDataset(inputs, task_for(cfg))

    def train_loader(self, epoch: int, batch_size: int, rank: int = 0,
                     world: int = 1) -> DataLoader:
        """Length-grouped batches of this epoch's fresh strings (``rank`` takes every world-th)."""
        ds = self.train_dataset(epoch)
        rng = random.Random(split_seed(self.cfg, "train", epoch))
        order = length_grouped_order([len(e.src) for e in ds.examples], batch_size, rng)
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        batches = batches[rank::world]
        # Own generator: creating the iterator must not draw from the global RNG (exact resume).
        gen = torch.Generator().manual_seed(split_seed(self.cfg, "train", epoch))
        return DataLoader(ds, batch_sampler=batches, collate_fn=collate, generator=gen)
