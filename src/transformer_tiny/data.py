"""The toy tasks' deterministic string sets; datasets, tensors and dataloaders for every task.

Each example is a pair of id sequences. With ``x`` the input's bytes and ``y`` the output's:

* ``src     = BOS x EOS``      encoder input
* ``tgt_in  = BOS y``          decoder input (teacher forcing)
* ``tgt_out = y EOS``          what the decoder must predict at each position

Batches are right-padded with PAD.

**Held-out split** (:mod:`~transformer_tiny.heldout`). Validation and test inputs come only from
the held-out slice (distinct, and disjoint from each other); training inputs never do. Training
strings are drawn afresh each epoch, independently, as the task's generator gives them (repeats
allowed): forcing them distinct would starve training of short strings. Pairs read from files
are split in :mod:`~transformer_tiny.pairs`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from .alphabets import ALPHABETS
from .config import DataConfig, ModelConfig
from .heldout import is_heldout
from .inputs import characters_changed
from .pair_files import PairFile, changed_notes
from .pairs import PairSplits, held_out_pairs, pair_splits
from .tasks import Task, get_task, task_for
from .tokenizer import ByteTokenizer

_SPLIT_SALT = {"val": 1, "test": 2, "train": 3, "train-hard": 4}


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
        # none allowed in the first 100,000 draws: give up now, whatever ``n`` asks for
        if attempts > 1000 * n + 100_000 or (candidates == 0 and attempts > 100_000):
            where = {True: "in the held-out slice", False: "outside the held-out slice",
                     None: "outside the excluded set"}[heldout]
            if exclude and heldout is not None:
                where += f" and not among {len(exclude):,} excluded strings"
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

    def __init__(self, inputs: list[str], task: str | Task, targets: list[str] | None = None):
        self.tok = ByteTokenizer()
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


POOL_STEPS = 50  # steps per pool of similar lengths: shuffled enough, little padding


def length_grouped_batches(lengths: list[int], batch_size: int, rng: random.Random,
                           world: int = 1) -> list[list[int]]:
    """Batches of example indices in a shuffled order, each batch of similar lengths (less
    padding).

    A step is ``world`` batches, one per process, of similar lengths too, so that no process
    waits for another's longer batch. Examples are shuffled; those that do not fill a last step
    are set aside (a random sample), the rest are cut into pools of :data:`POOL_STEPS` steps,
    sorted by length inside each pool and cut into steps; the steps are shuffled, and the
    examples set aside make the last, short step.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    step = batch_size * world
    full = len(order) - len(order) % step
    steps = []
    pool = step * POOL_STEPS
    for start in range(0, full, pool):
        chunk = sorted(order[start:min(start + pool, full)], key=lengths.__getitem__)
        steps += [chunk[j:j + step] for j in range(0, len(chunk), step)]
    rng.shuffle(steps)
    if full < len(order):
        steps.append(sorted(order[full:], key=lengths.__getitem__))
    return [s[j:j + batch_size] for s in steps for j in range(0, len(s), batch_size)]


@dataclass
class HeldOutSet:
    """A held-out split as evaluation reads it after training."""

    inputs: list[str]
    references: list[list[str]] | None  # accepted outputs (pairs); None: the task solves them
    files: list[PairFile]  # the pairs files read
    notes: list[str]  # what changed since training, for the caller to warn of


def held_out_set(cfg: DataConfig, split: str, max_input_bytes: int,
                 info: dict[str, Any]) -> HeldOutSet:
    """The ``split`` (``"val"`` or ``"test"``) of the data ``cfg`` describes (a run's, or one
    with another test file or bad-line setting) for the model whose checkpoint is ``info``.
    Pairs read from files: the split's own file, or its slice of the training file (and the
    other split's own file, whose inputs the slice leaves out), with a note if a file changed
    since training and one for the bad lines skipped; a generated task: a note if its alphabet
    changed."""
    if task_for(cfg).reads_files:
        held, files = held_out_pairs(cfg, split, max_input_bytes)
        skipped = [f.skip_note() for f in files if f.skipped]  # with cfg.skip_bad_lines
        return HeldOutSet(list(held), list(held.values()), files,
                          changed_notes(info.get("data_files"), files) + skipped)
    changed = characters_changed(cfg, info)
    notes = [] if changed is None else [
        f"{changed}; the {split} set is drawn from today's, not the one held out in training"]
    val, test = heldout_inputs(cfg)
    return HeldOutSet(test if split == "test" else val, None, [], notes)


def _outputs_beyond_room(pairs: list[tuple[str, str]], task: Task, which: str) -> list[str]:
    """A note if some outputs (``which``: of what) are longer than the decoders allow for their
    inputs (the task's ``output_room``, else the source's length plus a margin): the model
    would learn them and never write them whole."""
    room = task.room

    def size(text: str) -> int:
        return len(text.encode("utf-8", "surrogatepass"))

    n = sum(size(y) > room(size(x) + 2) for x, y in pairs)  # + 2: BOS and EOS
    if not n:
        return []
    per_token = f"{room.per_token} byte{'s' * (room.per_token != 1)} per input token"
    fix = "" if task.reads_files else "; give the task an output_room (docs/tasks.md)"
    return [f"{n} {which} outputs are longer than decoding allows for their inputs "
            f"({per_token} + {room.plus}): eval.py scores them cut short; infer.py "
            f"--max-new-tokens allows more{fix}"]


class DataModule:
    """Builds the datasets and loaders for one :class:`DataConfig`. ``max_input_bytes`` is the
    model's (pairs read from files must fit it)."""

    def __init__(self, cfg: DataConfig, max_input_bytes: int = ModelConfig().max_input_bytes):
        self.cfg = cfg
        self.pairs: PairSplits | None = None
        self._train_set: PairDataset | None = None
        task = task_for(cfg)
        if task.reads_files:
            self.pairs = pair_splits(cfg, max_input_bytes)
            self.notes = self.pairs.notes + _outputs_beyond_room(self.pairs.train, task,
                                                                 "training")
            self.val_inputs, self.test_inputs = list(self.pairs.val), list(self.pairs.test)
        else:
            self.val_inputs, self.test_inputs = heldout_inputs(cfg)
            held = self.val_inputs + self.test_inputs  # drawn as training draws its strings
            self.notes = _outputs_beyond_room([(x, task.solve(x)) for x in held], task,
                                              "held-out")

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
                self._train_set = PairDataset(list(sources), task_for(cfg), list(targets))
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
        """Length-grouped batches of this epoch's fresh strings: process ``rank`` of ``world``
        takes batch ``rank`` of every step (see :func:`length_grouped_batches`)."""
        ds = self.train_dataset(epoch)
        rng = random.Random(split_seed(self.cfg, "train", epoch))
        batches = length_grouped_batches([len(e.src) for e in ds.examples], batch_size, rng,
                                         world)[rank::world]
        # Own generator: creating the iterator must not draw from the global RNG (exact resume).
        gen = torch.Generator().manual_seed(split_seed(self.cfg, "train", epoch))
        return DataLoader(ds, batch_sampler=batches, collate_fn=collate, generator=gen)
