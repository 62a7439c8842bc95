"""Time to load a checkpoint of the quickstart's size: the checked loader against a plain one.

The plain loader does what loading did before checkpoints were treated as untrusted: read the
weights file whole, compare its SHA-256, deserialize it with safetensors, copy it into a new model
and move that to the device. The checked loader (``checkpoint.load_checkpoint``) also bounds the
JSON and the config's parameter count, checks the header against the model's shapes and the size
against the header, reads the file into place while hashing it, checks that every weight is
finite, and hands the model views of the checked bytes instead of copies. They take turns, and the
figures are medians. (The time to start Python and import torch, the same for both, is not in
them.)

    python benchmarks/load_time.py --repeats 30
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from safetensors.torch import load as load_safetensors  # noqa: E402

from transformer_tiny.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from transformer_tiny.config import RunConfig  # noqa: E402
from transformer_tiny.model import Seq2SeqTransformer  # noqa: E402
from transformer_tiny.utils import set_threads  # noqa: E402


def plain_load(json_path: Path) -> Seq2SeqTransformer:
    info = json.loads(json_path.read_text(encoding="utf-8"))
    blob = (json_path.parent / info["weights"]).read_bytes()
    if hashlib.sha256(blob).hexdigest() != info["weights_sha256"]:
        raise ValueError("hash mismatch")
    model = Seq2SeqTransformer(RunConfig.from_dict(info["config"]).model)
    model.load_state_dict(load_safetensors(blob))
    return model.to("cpu").eval()  # as load_checkpoint(path, device="cpu") did


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=30)
    args = p.parse_args()
    set_threads(0)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = RunConfig()
        path = save_checkpoint(tmp, "best", Seq2SeqTransformer(cfg.model), cfg, {"step": 1})
        plain_load(path), load_checkpoint(path)  # warm-up
        times: dict[str, list[float]] = {"checked": [], "plain": []}
        for _ in range(args.repeats):
            for name, fn in (("checked", load_checkpoint), ("plain", plain_load)):
                t = time.perf_counter()
                fn(path)
                times[name].append(time.perf_counter() - t)
    checked, plain = (statistics.median(times[k]) * 1000 for k in ("checked", "plain"))
    ratios = [c / p for c, p in zip(times["checked"], times["plain"], strict=True)]
    print(f"quickstart-size checkpoint, {args.repeats} loads each, taking turns")
    print(f"checked loader: median {checked:.1f} ms; plain loader: median {plain:.1f} ms; "
          f"median ratio checked/plain {statistics.median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
