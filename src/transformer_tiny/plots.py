"""PNG pictures of a run: cross-attention maps, training curves, accuracy by input length.

``python scripts/plot.py`` (or ``transformer-tiny plot``) draws all three for a checkpoint; the
functions below draw each one from Python. Needs matplotlib (the ``[plots]`` extra); figures are
drawn with the non-interactive Agg canvas, never through a window or pyplot's global state.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .attention_maps import AttentionMaps, cross_attention_maps
from .config import ModelConfig, RunConfig
from .data import bucket_inputs
from .extras import require
from .inputs import DEFAULT_TEXT, example_input, longest_input
from .logs import METRICS_FILE, read_metrics, read_steps
from .metrics import EvalResult, evaluate, even_buckets
from .positions import end_heads
from .tasks import task_for

PLOTS = {"attention": "attention.png", "curves": "training_curves.png",
         "lengths": "accuracy_by_length.png"}
CURVE_FIELDS = ("step", "train_loss", "val_exact_match", "val_char_accuracy")  # numbers drawn


def default_text(cfg: RunConfig) -> str:
    """The input whose cross-attention is drawn unless one is given: :data:`DEFAULT_TEXT`, or one
    the task draws when its training inputs could not hold that (``add``, ``parens``, a
    ``digits`` model; :func:`~transformer_tiny.inputs.example_input`)."""
    return example_input(cfg.data, DEFAULT_TEXT) or DEFAULT_TEXT


def new_figure(width: float, height: float) -> Any:
    """A matplotlib ``Figure`` on the Agg canvas;
    :class:`~transformer_tiny.extras.MissingExtraError` without matplotlib."""
    figure = require("matplotlib.figure", "plots", "drawing plots")
    agg = require("matplotlib.backends.backend_agg", "plots", "drawing plots")
    fig = figure.Figure(figsize=(width, height), layout="constrained")
    agg.FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # a character the font lacks is drawn as a box, not an error
        warnings.filterwarnings("ignore", message="Glyph .* missing")
        fig.savefig(path, dpi=100)
    return path


# ----------------------------------------------------------------------------- attention
def head_notes(cfg: ModelConfig) -> list[str]:
    """What each cross-attention head's keys are rotated by (rope: half from the start of the
    input, half from its end; other schemes: nothing to say)."""
    if cfg.position_scheme != "rope":
        return [""] * cfg.n_heads
    from_end = end_heads(cfg.n_heads)
    return ["positions from end" if h in from_end else "positions from start"
            for h in range(cfg.n_heads)]


def plot_attention(maps: AttentionMaps, path: str | Path,
                   notes: Sequence[str] | None = None) -> Path:
    """One heat map per decoder layer (rows) and head (columns): input characters across, the
    output characters being written down. For string reversal it is an anti-diagonal."""
    n_layers, n_heads, T, S = maps.weights.shape
    cell = 0.2 if max(T, S) <= 20 else 0.14
    panel_w, panel_h = max(2.4, S * cell), max(2.4, T * cell)
    font = 9 if max(T, S) <= 20 else 7
    fig = new_figure(n_heads * (panel_w + 0.6) + 1.4, n_layers * (panel_h + 0.9) + 0.8)
    axes = fig.subplots(n_layers, n_heads, squeeze=False, sharex=True, sharey=True)
    image = None
    for layer in range(n_layers):
        for head in range(n_heads):
            ax = axes[layer][head]
            image = ax.imshow(maps.weights[layer, head].numpy(), vmin=0.0, vmax=1.0,
                              cmap="viridis", interpolation="nearest")
            note = f"\n{notes[head]}" if notes and notes[head] else ""
            ax.set_title(f"layer {layer + 1}, head {head + 1}{note}", fontsize=10)
            ax.tick_params(labelsize=font)
    # The panels share their axes: characters on the outer ones only (quicker to draw, too).
    axes[0][0].set_xticks(range(S), labels=maps.source_labels)
    axes[0][0].set_yticks(range(T), labels=maps.output_labels)
    for ax in axes[-1]:
        ax.set_xlabel("input (keys)")
        for label in ax.get_xticklabels():  # characters upright, BOS/EOS sideways
            label.set_rotation(90 if len(label.get_text()) > 1 else 0)
    for row in axes:
        row[0].set_ylabel("output being written (queries)")
    fig.colorbar(image, ax=axes, shrink=0.8, label="attention weight")
    ending = "" if maps.ended else " (stopped before its end)"
    fig.suptitle(f"Cross-attention: {maps.text!r} → {maps.output!r}{ending}", fontsize=12)
    return _save(fig, path)


# ----------------------------------------------------------------------------- training curves
def curve_records(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of ``run_dir/metrics.jsonl``, each holding the numbers the training curves
    draw (:data:`CURVE_FIELDS`); a ``ValueError`` naming the file and line if one does not, or
    if there are none."""
    records = read_metrics(run_dir, CURVE_FIELDS)
    if not records:
        raise ValueError(f"{Path(run_dir) / METRICS_FILE} has no records")
    return records


def plot_training_curves(run_dir: str | Path, path: str | Path) -> Path:
    """Training loss (every step from ``steps.csv`` if present, and each epoch's mean) and
    validation accuracy (per epoch, from ``metrics.jsonl``) against the training step."""
    run_dir = Path(run_dir)
    records, steps = curve_records(run_dir), read_steps(run_dir)
    fig = new_figure(11.0, 4.2)
    loss_ax, acc_ax = fig.subplots(1, 2)
    x = [r["step"] for r in records]
    if steps:
        loss_ax.plot([s["step"] for s in steps], [s["loss"] for s in steps], lw=0.8, alpha=0.7,
                     color="tab:blue", label="each step")
    loss_ax.plot(x, [r["train_loss"] for r in records], "o-", color="tab:orange",
                 label="mean over the epoch")
    loss_ax.set_yscale("log")
    loss_ax.set(title="Training loss", xlabel="training step", ylabel="cross-entropy (log scale)")
    acc_ax.plot(x, [r["val_exact_match"] for r in records], "o-", label="exact match")
    acc_ax.plot(x, [r["val_char_accuracy"] for r in records], "s--",
                label="per-character accuracy")
    acc_ax.set(title="Validation accuracy (after each epoch)", xlabel="training step",
               ylabel="accuracy", ylim=(-0.02, 1.05))
    for ax in (loss_ax, acc_ax):
        ax.set_xlim(left=0)
        for step in x:
            ax.axvline(step, color="grey", lw=0.6, ls=":")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=9)
    fig.suptitle(f"Training curves of {run_dir} ({len(records)} epochs, {x[-1]} steps; dotted: "
                 "ends of epochs)", fontsize=12)
    return _save(fig, path)


# ----------------------------------------------------------------------------- accuracy by length
def draws_lengths(cfg: RunConfig) -> bool:
    """Whether the accuracy-by-length picture can be drawn for a model of ``cfg``: its task must
    make and solve inputs of any length, which pairs read from files do not."""
    return not task_for(cfg.data).reads_files


def default_buckets(cfg: RunConfig) -> list[tuple[int, int]]:
    """The training lengths in four buckets, then inputs up to 2x and 4x longer (as far as the
    model's positions allow for the widest character of the alphabet)."""
    lo, hi = cfg.data.min_len, cfg.data.max_len
    buckets = even_buckets(lo, hi)
    limit = longest_input(cfg.data, cfg.model.max_input_bytes)
    for factor in (2, 4):
        top = min(hi * factor, limit)
        if top > buckets[-1][1]:
            buckets.append((buckets[-1][1] + 1, top))
    return buckets


def accuracy_by_length(model: Any, cfg: RunConfig, buckets: list[tuple[int, int]],
                       samples: int) -> EvalResult:
    """Greedy exact match and per-character accuracy on ``samples`` fresh strings per bucket
    (the strings of ``eval.py --lengths ... --samples N``)."""
    inputs = bucket_inputs(cfg.data, buckets, samples)
    return evaluate(model, inputs, task_for(cfg.data), buckets)


def plot_accuracy_by_length(result: EvalResult, path: str | Path,
                            trained_up_to: int | None = None, title: str = "") -> Path:
    """Bars of exact match and per-character accuracy per length bucket; buckets longer than
    ``trained_up_to`` (the longest training string) are shaded."""
    names = list(result.buckets)
    fig = new_figure(max(7.0, 1.1 * len(names) + 2.0), 4.2)
    ax = fig.subplots()
    xs = range(len(names))
    exact = [result.buckets[n]["exact_match"] for n in names]
    chars = [result.buckets[n]["char_accuracy"] for n in names]
    ax.bar([x - 0.2 for x in xs], exact, width=0.4, label="exact match")
    ax.bar([x + 0.2 for x in xs], chars, width=0.4, label="per-character accuracy")
    for x, value in zip(xs, exact, strict=True):
        ax.annotate(f"{value:.2f}", (x - 0.2, value), ha="center", va="bottom", fontsize=8)
    if trained_up_to is not None:
        beyond = [x for x, n in zip(xs, names, strict=True) if int(n.split("-")[0]) > trained_up_to]
        if beyond:
            ax.axvspan(beyond[0] - 0.5, beyond[-1] + 0.5, color="grey", alpha=0.15,
                       label="longer than any training string")
    counts = {int(result.buckets[n]["n"]) for n in names}
    each = f"{counts.pop()} strings per bucket" if len(counts) == 1 else "strings per bucket vary"
    ax.set_xticks(list(xs), labels=names)
    ax.set(xlabel="input length (characters)", ylabel="accuracy", ylim=(0, 1.25),
           yticks=[0, 0.2, 0.4, 0.6, 0.8, 1.0],
           title=title or f"Accuracy by input length (greedy decoding, {each})")
    ax.legend(loc="upper center", ncol=3, fontsize=9, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


# ----------------------------------------------------------------------------- all of them
def draw(model: Any, cfg: RunConfig, out: str | Path, kinds: Sequence[str] = tuple(PLOTS),
         text: str | None = None, buckets: list[tuple[int, int]] | None = None,
         samples: int = 100, run_dir: str | Path | None = None) -> list[Path]:
    """Draw the pictures ``kinds`` (keys of :data:`PLOTS`) into ``out``; returns their paths.
    ``text`` is the input whose cross-attention is drawn, as a user types it (None:
    :func:`default_text`), ``buckets`` the length buckets of the accuracy picture
    (:func:`default_buckets` if None), ``run_dir`` the run folder whose logs give the training
    curves."""
    task = task_for(cfg.data)
    if "attention" in kinds:  # before anything is written: add refuses text not digits+digits
        source = task.model_input(text or default_text(cfg))
    _check_kinds(cfg, kinds, run_dir)
    out, written = Path(out), []
    for kind in kinds:
        path = out / PLOTS[kind]
        if kind == "attention":
            maps = cross_attention_maps(model, source, task.output_room)
            written.append(plot_attention(maps, path, head_notes(cfg.model)))
        elif kind == "curves":
            written.append(plot_training_curves(run_dir, path))
        else:
            result = accuracy_by_length(model, cfg, buckets or default_buckets(cfg), samples)
            written.append(plot_accuracy_by_length(result, path, cfg.data.max_len))
    return written


def drawable(cfg: RunConfig, run_dir: str | Path | None,
             only: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """The pictures to draw and a note on each one left out: those of ``only`` (keys of
    :data:`PLOTS`; one that cannot be drawn is :func:`draw`'s error), or else every picture
    this model and run folder allow: curves need the run's ``metrics.jsonl``, accuracy by
    length a task that makes its own inputs."""
    if only:
        return [k for k in PLOTS if k in only], []
    kinds, notes = [], []
    for kind in PLOTS:
        reason = _why_not(kind, cfg, run_dir)
        if reason is None:
            kinds.append(kind)
        else:
            notes.append(f"{reason}; {_NEEDS[kind][0]} skipped")
    return kinds, notes


# Per picture that some runs cannot draw: its name, and what it needs.
_NEEDS = {"lengths": ("accuracy by length", "needs a task that makes its own inputs"),
          "curves": ("training curves", "need the run folder that train.py wrote")}


def _why_not(kind: str, cfg: RunConfig, run_dir: str | Path | None) -> str | None:
    """Why the picture ``kind`` cannot be drawn for this model and run folder (None if it can)."""
    if kind == "lengths" and not draws_lengths(cfg):
        return f"task {cfg.data.task} reads its inputs from files"
    if kind == "curves" and not (run_dir and (Path(run_dir) / METRICS_FILE).is_file()):
        return f"no {METRICS_FILE} in {run_dir}"
    return None


def _check_kinds(cfg: RunConfig, kinds: Sequence[str], run_dir: str | Path | None) -> None:
    """Fail before any picture is written if one of ``kinds`` cannot be drawn."""
    for kind in kinds:
        reason = _why_not(kind, cfg, run_dir)
        if reason is not None:
            name, needs = _NEEDS[kind]
            raise ValueError(f"{reason}: {name} {needs}")
    if "curves" in kinds:
        curve_records(run_dir)
