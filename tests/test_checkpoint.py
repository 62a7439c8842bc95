"""Checkpoints: lossless save/load, a one-line CheckpointError for every broken one, and a pickle
planted as a checkpoint refused without running."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import warnings
from pathlib import Path

import pytest
import torch
from helpers import TINY, make_model, run_main, source_batch, target_batch, weights_of

from transformer_tiny.checkpoint import (
    FORMAT,
    CheckpointError,
    announce_files,
    check_optimizer_groups,
    expected_trainer_state,
    load_checkpoint,
    pack_trainer_state,
    resolve_checkpoint,
    save_checkpoint,
    tensors_sha256,
    unpack_trainer_state,
)
from transformer_tiny.cli.infer import infer_main
from transformer_tiny.config import ModelConfig, RunConfig
from transformer_tiny.model import Seq2SeqTransformer
from transformer_tiny.safe_files import read_safetensors
from transformer_tiny.utils import atomic_write_json


def run_config(**model_overrides) -> RunConfig:
    """The config that goes with ``make_model(**model_overrides)``."""
    return RunConfig(model=ModelConfig(**{**TINY, **model_overrides}))


@pytest.fixture
def saved(tmp_path: Path):
    """A float32 model saved as ``tmp_path/best.*``; returns ``(model, cfg, json_path)``."""
    model = make_model(dtype=torch.float32)
    cfg = run_config()
    path = save_checkpoint(tmp_path, "best", model, cfg, {"step": 7, "metrics": {"x": 0.5}})
    return model, cfg, path


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def assert_one_line_error(path, match: str) -> CheckpointError:
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert message and "\n" not in message
    return info.value


def test_round_trip_gives_identical_logits(saved, tmp_path):
    model, cfg, path = saved
    assert path == tmp_path / "best.json"
    src, tgt = source_batch([5, 2, 0]), target_batch([3, 4, 1])
    expected = model(src, tgt)
    for where in (tmp_path, path, weights_of(path), str(path)):
        loaded, loaded_cfg, info = load_checkpoint(where)
        assert not loaded.training
        assert loaded_cfg == cfg
        assert info["step"] == 7 and info["metrics"] == {"x": 0.5}
        assert loaded(src, tgt).equal(expected)
        for name, tensor in model.state_dict().items():
            assert loaded.state_dict()[name].equal(tensor)


def test_json_contents(saved, tmp_path):
    _, cfg, path = saved
    info = read_json(path)
    assert info["format"] == FORMAT
    assert info["config"] == cfg.to_dict()
    assert RunConfig.from_dict(info["config"]) == cfg
    assert info["tokenizer"] == {"type": "byte", "vocab_size": 259, "pad": 256, "bos": 257,
                                 "eos": 258}
    assert info["weights"].startswith("best") and info["weights"].endswith(".safetensors")
    assert info["step"] == 7
    blob = (tmp_path / info["weights"]).read_bytes()
    assert info["weights_sha256"] == hashlib.sha256(blob).hexdigest()


def test_checkpoint_from_before_rope_stride_keeps_its_rotary_angles(saved):
    """A config saved before ``rope_stride`` existed loads with stride 1, the angles its model
    was trained with; one that names a stride keeps it."""
    model, _, path = saved
    info = read_json(path)
    assert info["config"]["model"]["rope_stride"] == 4
    assert load_checkpoint(path)[1].model.rope_stride == 4
    del info["config"]["model"]["rope_stride"]
    atomic_write_json(path, info)
    loaded, cfg, _ = load_checkpoint(path)
    assert cfg.model.rope_stride == 1
    assert torch.equal(loaded.rope_cos_sin, make_model(rope_stride=1).rope_cos_sin.float())
    assert not torch.equal(loaded.rope_cos_sin, model.rope_cos_sin)


def test_resolve_checkpoint(saved, tmp_path):
    _, _, path = saved
    assert resolve_checkpoint(tmp_path) == path
    assert resolve_checkpoint(weights_of(path)) == path
    assert resolve_checkpoint(path) == path


def test_resolve_checkpoint_in_the_shared_layout(saved, tmp_path):
    model, cfg, _ = saved
    folder = tmp_path / "shared"
    save_checkpoint(folder, "config", model, cfg, {"step": 7}, weights_name="model.safetensors")
    for where in (folder, folder / "model.safetensors", folder / "config.json"):
        assert resolve_checkpoint(where) == folder / "config.json"


def test_corrupted_weights(saved, tmp_path):
    weights = weights_of(saved[2])
    blob = bytearray(weights.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    blob[-1] ^= 0x01
    weights.write_bytes(bytes(blob))
    assert_one_line_error(tmp_path, r"do not match best\.json \(corrupted or replaced\)$")


def test_truncated_weights_with_matching_hash(saved, tmp_path):
    """A torn weights file whose hash was (wrongly) recorded still fails cleanly."""
    _, _, path = saved
    weights = weights_of(path)
    blob = weights.read_bytes()[:1000]
    weights.write_bytes(blob)
    info = read_json(path)
    info["weights_sha256"] = hashlib.sha256(blob).hexdigest()
    atomic_write_json(path, info)
    assert_one_line_error(tmp_path, f"^weights {re.escape(str(weights))} are truncated or not a "
                                    "safetensors file$")


def test_config_that_does_not_fit_the_weights(saved, tmp_path):
    path = saved[2]
    info = read_json(path)
    info["config"]["model"]["d_model"] = 64  # the sha256 still matches the weights
    atomic_write_json(path, info)
    assert_one_line_error(tmp_path, "do not fit the config")


def test_missing_weights_file(saved, tmp_path):
    weights_of(saved[2]).unlink()
    assert_one_line_error(tmp_path, "cannot read weights")


@pytest.mark.parametrize("key, reason", [
    ("weights", r"best\.json names no weights file$"),
    ("weights_sha256", r"best\.json records no SHA-256 for weights "),
])
def test_json_without_a_weights_entry_says_which(saved, tmp_path, key, reason):
    _, _, path = saved
    info = read_json(path)
    del info[key]
    atomic_write_json(path, info)
    assert_one_line_error(tmp_path, reason)


def test_saving_again_replaces_the_weights(saved, tmp_path):
    _, cfg, path = saved
    old_weights = weights_of(path)
    newer = make_model(seed=1, dtype=torch.float32)
    save_checkpoint(tmp_path, "best", newer, cfg, {"step": 8})
    assert not old_weights.exists()  # no orphaned weights are left behind
    assert sorted(os.listdir(tmp_path)) == sorted(["best.json", weights_of(path).name])
    src, tgt = source_batch([4]), target_batch([2])
    assert load_checkpoint(tmp_path)[0](src, tgt).equal(newer(src, tgt))


def test_saving_again_when_the_previous_weights_are_already_gone(saved, tmp_path):
    _, cfg, path = saved
    weights_of(path).unlink()
    newer = make_model(seed=1, dtype=torch.float32)
    save_checkpoint(tmp_path, "best", newer, cfg, {"step": 8})
    assert sorted(os.listdir(tmp_path)) == ["best-0000008.safetensors", "best.json"]


def test_meta_without_a_step_is_saved_as_step_zero(tmp_path):
    model, cfg = make_model(dtype=torch.float32), run_config()
    path = save_checkpoint(tmp_path, "last", model, cfg, {}, trainer_state={"x": torch.ones(2)})
    info = read_json(path)
    assert info["weights"] == "last-0000000.safetensors"
    assert info["state"] == "last-0000000.state.safetensors"
    assert sorted(os.listdir(tmp_path)) == [
        "last-0000000.safetensors", "last-0000000.state.safetensors", "last.json"]


def test_missing_path(tmp_path):
    assert_one_line_error(tmp_path / "nope", "no checkpoint")
    assert_one_line_error(tmp_path / "nope.json", "no checkpoint")


def test_directory_without_best_json(tmp_path):
    (tmp_path / "last.json").write_text("{}")
    assert_one_line_error(tmp_path, "no checkpoint")


def test_json_is_a_directory(tmp_path):
    (tmp_path / "best.json").mkdir()
    assert_one_line_error(tmp_path, "not a file")


# Invalid UTF-8, JSON nested too deeply and JSON that is not an object are test_hostile's cases.
@pytest.mark.parametrize(("data", "reason"), [
    pytest.param(b"", "is unreadable: Expecting value: line 1 column 1 (char 0)", id="empty"),
    pytest.param(b"{not json", "is unreadable: Expecting property name enclosed in double quotes",
                 id="invalid_json"),
    pytest.param(b'{"step": ' + b"9" * 5000 + b"}", "is unreadable: Exceeds the limit",
                 id="integer_too_long"),
])
def test_unreadable_json_error_says_why(saved, tmp_path, data, reason):
    _, _, path = saved
    path.write_bytes(data)
    assert_one_line_error(tmp_path, f"^checkpoint {re.escape(str(path))} {re.escape(reason)}")


def test_json_of_another_format_is_not_a_checkpoint(saved, tmp_path):
    _, _, path = saved
    path.write_text('{"format": "other"}')
    assert_one_line_error(tmp_path, f"^{re.escape(str(path))} is not a transformer_tiny "
                                    "checkpoint$")


# the config in the JSON, and the ConfigError that makes it invalid (see config.RunConfig)
@pytest.mark.parametrize(("config", "reason"), [
    pytest.param({"model": {"d_model": 30}}, "d_model: must be divisible by n_heads",
                 id="invalid_value"),
    pytest.param({"model": {"colour": "red"}}, "model.colour: unknown config key",
                 id="unknown_key"),
    pytest.param({"model": 5}, "model: must be a JSON object", id="section_not_a_dict"),
    pytest.param({"model": {"d_model": "wide"}}, "d_model: must be of type int, got 'wide'",
                 id="string_size"),
    pytest.param([], "config: must be a JSON object", id="config_is_a_list"),
    pytest.param({"model": {**TINY, "d_model": 32.0}}, "d_model: must be of type int, got 32.0",
                 id="float_size"),
    pytest.param({"model": {**TINY, "randomize_positions": "no"}},
                 "randomize_positions: must be of type bool, got 'no'", id="string_bool"),
    pytest.param({"modle": {}}, "modle: unknown config section", id="unknown_section"),
])
def test_invalid_config_in_json(saved, tmp_path, config, reason):
    _, _, path = saved
    info = read_json(path)
    info["config"] = config
    atomic_write_json(path, info)
    assert_one_line_error(tmp_path, f"^checkpoint {re.escape(str(path))} has an invalid config: "
                                    f"{re.escape(reason)}$")


def test_save_checkpoint_leaves_no_temp_files(saved, tmp_path):
    assert sorted(os.listdir(tmp_path)) == sorted(["best.json", weights_of(saved[2]).name])


# ----------------------------------------------------------------------------- pickles
class Boom:
    def __reduce__(self):
        return (os.system, (f"touch {Boom.marker}",))


def test_pickle_planted_as_checkpoint_is_refused_and_never_run(tmp_path):
    Boom.marker = tmp_path / "pwned"
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.json").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(CheckpointError, match=r"best\.json is unreadable: 'utf-8' codec"):
        load_checkpoint(run)
    torch.save({"w": Boom()}, run / "evil.pt")  # a pickle named like weights
    (run / "best.json").unlink()
    (run / "evil.safetensors").write_bytes((run / "evil.pt").read_bytes())
    with pytest.raises(CheckpointError, match=r"^no checkpoint at "):
        load_checkpoint(run / "evil.safetensors")
    proc = run_main(infer_main, "--checkpoint", str(run / "evil.safetensors"), "--text", "x")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert not Boom.marker.exists()


@pytest.mark.parametrize("sizes", [{}, dict(d_model=16, n_heads=2, n_enc_layers=3, n_dec_layers=1,
                                            d_ff=8), dict(d_model=64, n_heads=8, d_ff=512,
                                                          n_enc_layers=2, n_dec_layers=4)])
def test_parameter_count_from_the_sizes_is_the_models(sizes):
    cfg = RunConfig(model=ModelConfig(**sizes))
    assert cfg.model.num_parameters() == Seq2SeqTransformer(cfg.model).num_parameters()


# ----------------------------------------------------------------------------- trainer state
def adamw_after_steps(seed: int, steps: int) -> tuple[torch.nn.Module, torch.optim.AdamW]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    for _ in range(steps):
        opt.zero_grad()
        model(torch.randn(5, 3)).square().sum().backward()
        opt.step()
    return model, opt


def test_trainer_state_round_trip_restores_every_moment_and_step():
    _, opt = adamw_after_steps(0, 3)
    tensors, meta = pack_trainer_state(opt)
    _, fresh = adamw_after_steps(1, 1)  # other moments, to be replaced
    unpack_trainer_state(fresh, tensors, json.loads(json.dumps(meta)))  # meta goes through JSON
    want, got = opt.state_dict(), fresh.state_dict()
    assert sorted(got["state"]) == [0, 1, 2, 3]  # one entry per parameter, by its index
    for idx, state in want["state"].items():
        assert set(got["state"][idx]) == {"step", "exp_avg", "exp_avg_sq"}
        for name, value in state.items():
            assert torch.equal(got["state"][idx][name], value), (idx, name)
    assert float(got["state"][0]["step"]) == 3.0


def test_restored_optimizer_keeps_the_hyperparameters_it_was_built_with():
    """A resumed run may change --weight-decay; a hostile ``last.json`` may hold any epsilon:
    only the moments and steps come from the checkpoint."""
    _, opt = adamw_after_steps(0, 2)
    tensors, meta = pack_trainer_state(opt)
    meta["param_groups"][0].update(eps=-1.0, betas=[2.0, 2.0], weight_decay=0.01)
    model, _ = adamw_after_steps(1, 0)
    resumed = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.5)
    unpack_trainer_state(resumed, tensors, meta)
    (group,) = resumed.param_groups
    assert (group["weight_decay"], group["eps"], tuple(group["betas"])) == (0.5, 1e-8, (0.9, 0.999))
    assert float(resumed.state_dict()["state"][0]["step"]) == 2.0


def test_packing_the_trainer_state_warns_nothing():
    """Saving ``last`` packs the optimizer's tensors as they are: no copy-construction warning
    on the user's terminal at every save."""
    _, opt = adamw_after_steps(0, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tensors, _ = pack_trainer_state(opt)
    for idx, state in opt.state_dict()["state"].items():
        for name, value in state.items():
            assert torch.equal(tensors[f"opt.{idx}.{name}"], value), (idx, name)


def test_cuda_rng_state_is_saved_and_restored_only_where_cuda_is(monkeypatch):
    _, opt = adamw_after_steps(0, 1)
    cuda_state = torch.arange(16, dtype=torch.uint8)
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda: cuda_state)
    monkeypatch.setattr(torch.cuda, "set_rng_state", restored.append)
    tensors, meta = pack_trainer_state(opt)
    assert torch.equal(tensors["rng.cuda"], cuda_state)
    unpack_trainer_state(opt, {k: v for k, v in tensors.items() if k != "rng.cuda"}, meta)
    assert restored == []  # saved on a machine without CUDA: nothing to restore
    unpack_trainer_state(opt, tensors, meta)
    assert len(restored) == 1 and torch.equal(restored[0], cuda_state)

    def wrong_size(state):  # CUDA's answer to a hostile state of another length
        raise RuntimeError("RNG state is wrong size")

    monkeypatch.setattr(torch.cuda, "set_rng_state", wrong_size)
    with pytest.raises(CheckpointError, match=r"^trainer state does not fit this run: RNG state "
                                              r"is wrong size$"):
        unpack_trainer_state(opt, {**tensors, "rng.cuda": cuda_state[:3]}, meta)


def test_trainer_state_expects_the_dtypes_safetensors_writes_for_rng_states():
    from safetensors.torch import save

    blob = save({"rng.torch": torch.get_rng_state(),
                 "rng.cuda": torch.zeros(16, dtype=torch.uint8)})  # CUDA's state is bytes too
    header = json.loads(blob[8:8 + int.from_bytes(blob[:8], "little")])
    expected, optional = expected_trainer_state([])
    assert optional == {"rng.cuda"}
    assert {k: expected[k][1] for k in optional | {"rng.torch"}} == \
        {k: header[k]["dtype"] for k in ("rng.torch", "rng.cuda")}


@pytest.mark.parametrize("size", [16, 3])
def test_a_cuda_rng_state_of_another_size_is_refused_on_reading(size, tmp_path):
    """CUDA takes its RNG state lazily, so a state of the wrong size would fail only at the first
    save, after training; reading the checkpoint refuses it instead."""
    from safetensors.torch import save

    expected, optional = expected_trainer_state([])
    blob = save({"rng.torch": torch.get_rng_state(),
                 "rng.cuda": torch.zeros(size, dtype=torch.uint8)})
    path = tmp_path / "last-0000001.state.safetensors"
    path.write_bytes(blob)
    args = (path, "trainer state", expected, optional, hashlib.sha256(blob).hexdigest(),
            "last.json")
    if size == 16:  # torch.cuda.get_rng_state()'s size
        assert read_safetensors(*args)["rng.cuda"].shape == (16,)
    else:
        with pytest.raises(CheckpointError, match=r"'rng\.cuda'"):
            read_safetensors(*args)


@pytest.mark.parametrize("groups", [[1], ["params"], [{"params": 3}], [{}], {"params": []}])
def test_malformed_optimizer_groups_are_refused(groups):
    with pytest.raises(CheckpointError, match="optimizer groups"):
        check_optimizer_groups({"param_groups": groups}, [1])
    check_optimizer_groups({"param_groups": [{"params": [7]}]}, [1])  # the well-formed one


def test_optimizer_groups_of_other_sizes_are_refused_with_a_plain_message():
    with pytest.raises(CheckpointError) as info:
        check_optimizer_groups({"param_groups": [{"params": [0, 1]}]}, [1])
    assert str(info.value) == "the checkpoint's optimizer groups do not fit this run"


def test_loaded_parameters_are_the_tensors_read_from_the_file_not_copies(saved, monkeypatch):
    """Loading holds the weights once: the model takes the tensors read from the weights file as
    its parameters instead of copying them into freshly initialised ones."""
    import transformer_tiny.checkpoint as checkpoint

    read_tensors = checkpoint.read_checked_tensors
    read: list[dict[str, torch.Tensor]] = []

    def recording(*args, **kwargs):
        read.append(read_tensors(*args, **kwargs))
        return read[-1]

    monkeypatch.setattr(checkpoint, "read_checked_tensors", recording)
    model, _, _ = load_checkpoint(saved[2])
    [tensors] = read
    assert {k: t.data_ptr() for k, t in model.state_dict().items()} == \
        {k: t.data_ptr() for k, t in tensors.items()}


def test_a_run_with_only_last_json_says_so(saved, tmp_path):
    """A run stopped before its first epoch ended holds last.json alone: the error names it."""
    _, _, path = saved
    path.rename(path.with_name("last.json"))
    with pytest.raises(CheckpointError, match=r"^no checkpoint at .* but .*last\.json, the "
                                              r"run's latest state \(no best one was saved\): "
                                              r"pass it, or resume the run with --resume$"):
        load_checkpoint(tmp_path)
    assert load_checkpoint(tmp_path / "last.json")[1] is not None


def test_a_checkpoint_whose_next_save_stopped_after_announcing_its_files_still_loads(saved):
    """A save stopped right after it announced its files (a kill) leaves the JSON naming the
    earlier files, untouched: the earlier model still loads."""
    model, cfg, path = saved
    other = make_model(seed=1, dtype=torch.float32).state_dict()
    announce_files(path, [tensors_sha256(other)])
    assert "announced_sha256" in read_json(path) and "config" in read_json(path)
    loaded, loaded_cfg, info = load_checkpoint(path)
    assert loaded_cfg == cfg and info["step"] == 7
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
