"""SDAS as a generator: raw and blended shards, strengths per row, model lookup, bad input, and the
variants (image-conditioned start at t0, masks aligned with the difference from the s = 0 twin)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from synth.data import load_category
from synth.diffusion.model import ModelConfig, build_unet, save_model
from synth.diffusion.models import find_model
from synth.errors import SynthError
from synth.pipeline.provenance import model_id
from tests.conftest import run_cli
from tests.test_gen import shard_bytes


@pytest.fixture(scope="module")
def micro_model(tmp_path_factory) -> Path:
    """An untrained 16x16 model of the embedded `brick` category (sampling plumbing only)."""
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("models") / "brick"
    save_model(build_unet("micro"), directory, ModelConfig(class_names=["brick"], preset="micro", size=16))
    return directory


def sdas_args(model: Path, out: Path, *extra) -> list:
    return ["gen", "--generator", "sdas", "--category", "brick", "--model", model, "--size", 16,
            "--steps", 4, "--shard-size", 4, "--batch-size", 3, "--out", out, *extra]


def test_raw_sdas_rows_record_strength(micro_model, tmp_path, capsys):
    out = tmp_path / "raw"
    status, _, err = run_cli([*sdas_args(micro_model, out), "-n", 7, "--s", "0.1:0.2"], capsys)
    assert status == 0, err
    table = pq.read_table(out / "data")
    assert table.num_rows == 7
    s = np.array(table["s"].to_pylist())
    assert ((0.1 <= s) & (s <= 0.2)).all() and len(set(s)) == 7
    assert set(table["steps"].to_pylist()) == {4} and table["mask"].null_count == 7
    assert table["source"].null_count == 7 and not any(table["upscaled"].to_pylist())
    assert "t0" not in table.column_names and "mask_source" not in table.column_names  # variants off: same schema
    # provenance: a portable model id and the weights' sha256, never a path of this machine
    weights = (micro_model / "diffusion_pytorch_model.safetensors").read_bytes()
    assert set(table["model"].to_pylist()) == {micro_model.name}
    assert set(table["model_sha256"].to_pylist()) == {hashlib.sha256(weights).hexdigest()}
    for column in table.column_names:
        if pa.types.is_string(table.schema.field(column).type):
            assert not any(str(v).startswith("/") or str(tmp_path) in str(v) for v in table[column].to_pylist())


def test_raw_sdas_needs_no_data_for_a_category_with_a_model(tmp_path, capsys):
    """The headline's shape: `synth gen --category bottle` with a bottle model and no dataset."""
    root = tmp_path / "models"
    save_model(build_unet("micro"), root / "bottle", ModelConfig(class_names=["bottle"], preset="micro", size=16))
    out = tmp_path / "bottle-sdas"
    status, _, err = run_cli(["gen", "--category", "bottle", "--models", root, "--size", 16, "--steps", 2,
                              "-n", 3, "--out", out], capsys)
    assert status == 0, err
    table = pq.read_table(out / "data")
    assert table.num_rows == 3 and table["source"].null_count == 3 and set(table["category"].to_pylist()) == {"bottle"}
    status, _, err = run_cli(["gen", "--category", "bottle", "--models", root, "--size", 16, "--blend", "-n", 2,
                              "--out", tmp_path / "blend"], capsys)
    assert status == 2 and "bottle" in err  # blending needs the normal images: --data


def test_fixed_strength_and_s_per_batch(micro_model, tmp_path, capsys):
    assert run_cli([*sdas_args(micro_model, tmp_path / "a"), "-n", 3, "--s", "0.3"], capsys)[0] == 0
    assert set(pq.read_table(tmp_path / "a/data")["s"].to_pylist()) == {0.3}
    assert run_cli([*sdas_args(micro_model, tmp_path / "b"), "-n", 6, "--s-per-batch", "--shard-size", 6], capsys)[0] == 0
    s = pq.read_table(tmp_path / "b/data")["s"].to_pylist()
    assert s[0] == s[1] == s[2] and s[3] == s[4] == s[5] and s[0] != s[3]


def test_blend_masks_and_unchanged_pixels(micro_model, tmp_path, capsys):
    out = tmp_path / "blend"
    assert run_cli([*sdas_args(micro_model, out), "-n", 6, "--blend", "--size", 32], capsys)[0] == 0
    table = pq.read_table(out / "data").to_pylist()
    brick = load_category(None, "brick", size=32)
    import cv2

    for row in table:
        image = cv2.imdecode(np.frombuffer(row["image"]["bytes"], np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
        mask = cv2.imdecode(np.frombuffer(row["mask"]["bytes"], np.uint8), cv2.IMREAD_GRAYSCALE)
        source = brick.train_images[brick.train_ids.index(row["source"])]
        assert mask.any() and 0.5 <= row["delta"] <= 1.0 and row["upscaled"] and row["model_size"] == 16
        assert ((image != source).any(axis=2) <= (mask > 0)).all()


def test_two_processes_same_bytes_as_one(micro_model, tmp_path, capsys):
    assert run_cli([*sdas_args(micro_model, tmp_path / "one"), "-n", 8], capsys)[0] == 0
    assert run_cli([*sdas_args(micro_model, tmp_path / "two"), "-n", 8, "--num-processes", 2], capsys)[0] == 0
    assert shard_bytes(tmp_path / "one") == shard_bytes(tmp_path / "two")


@pytest.mark.parametrize("extra, message", [
    (["--size", 24], "must be it times 1, 2 or 4"),
    (["--size", 8], "must be it times 1, 2 or 4"),
    (["--s", "-0.2"], "negative"),
    (["--delta", "0.2:1.5", "--blend"], "--delta"),
    (["--delta", "0.6:0.9"], "needs --blend"),
    (["-o", "mask=aligned"], "needs --blend"),
    (["-o", "mask=twin", "--blend"], "mask must be one of"),
    (["-o", "t0=1000"], "t0 must be between 0 and 999"),
    (["-o", "t0=half"], "t0 must be a number"),
    (["-o", "mask_threshold=-1", "--blend", "-o", "mask=both"], "mask_threshold"),
])
def test_bad_sdas_input(micro_model, tmp_path, capsys, extra, message):
    status, _, err = run_cli([*sdas_args(micro_model, tmp_path / "x"), "-n", 2, *extra], capsys)
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1


def test_missing_model_says_how_to_train(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SYNTH_MODELS", str(tmp_path / "models"))
    status, _, err = run_cli(["gen", "--category", "gravel", "-n", 2, "--out", tmp_path / "o"], capsys)
    assert status == 2 and "synth train --category gravel" in err
    with pytest.raises(SynthError, match="does not exist"):
        find_model("brick", tmp_path / "nowhere")


def test_models_root_lookup(micro_model, tmp_path):
    assert find_model("brick", root=micro_model.parent) == micro_model


def test_a_bundled_model_is_found_by_the_id_its_rows_record():
    bundled = find_model("brick")  # the bundled brick model
    assert model_id(bundled) == "synth/brick-tiny"
    assert find_model("woven", "synth/brick-tiny") == bundled  # no Hub call: it ships with the package


def test_strength_sweep_preview(micro_model, tmp_path, capsys):
    sheet = tmp_path / "sweep.png"
    args = ["preview", "--generator", "sdas", "--category", "brick", "--model", micro_model, "--size", 16,
            "--steps", 3, "--s", "0,0.2,0.8", "-n", 2, "--tile", 16, "--out", sheet]
    status, _, err = run_cli(args, capsys)
    assert status == 0, err
    import cv2

    image = cv2.imread(str(sheet))
    assert image.shape[:2] == (2 * 16 + 3 * 4, 3 * 16 + 4 * 4)
    tiles = [image[4:20, 4 + c * 20:20 + c * 20].astype(float) for c in range(3)]
    assert np.abs(tiles[0] - tiles[1]).mean() < np.abs(tiles[0] - tiles[2]).mean()


def test_accelerate_launch_two_cpu_processes_same_bytes(micro_model, tmp_path, capsys):
    import os
    import subprocess
    import sys

    assert run_cli([*sdas_args(micro_model, tmp_path / "one"), "-n", 7], capsys)[0] == 0
    launcher = Path(sys.executable).with_name("accelerate")
    args = [str(a) for a in sdas_args(micro_model, tmp_path / "two")][1:]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                             "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "synth", "gen", *args, "-n", "7"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("wrote 7 samples") == 1
    assert shard_bytes(tmp_path / "one") == shard_bytes(tmp_path / "two")


@pytest.mark.parametrize("category", ["brick", "bottle", "metal_plate", "magnetic_tile"])
def test_bundled_models_load_and_sample(category, monkeypatch, tmp_path):
    from synth.diffusion.model import load_model
    from synth.diffusion.models import bundled_models
    from synth.diffusion.sampler import SDASSampler, image_generators

    monkeypatch.setenv("SYNTH_MODELS", str(tmp_path))  # no local models: the bundled one is found
    directory = find_model(category)
    assert directory == bundled_models()[category]
    unet, config = load_model(directory)
    assert config.preset in ("tiny", "compact") and config.size == 64 and config.steps > 0 and config.loss == "offset"
    assert config.data is None or "/" not in config.data
    images = SDASSampler(unet, 2).sample(1, torch.zeros(1), image_generators(0, [0]))
    assert images.shape == (1, 3, 64, 64) and images.abs().max() <= 1.0 and images.std() > 0.05


def read_rows(out: Path) -> list[dict]:
    import cv2

    rows = pq.read_table(out / "data").to_pylist()
    for row in rows:
        row["image"] = cv2.imdecode(np.frombuffer(row["image"]["bytes"], np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
        if row["mask"] is not None:
            row["mask"] = cv2.imdecode(np.frombuffer(row["mask"]["bytes"], np.uint8), cv2.IMREAD_GRAYSCALE)
    return rows


def test_image_conditioned_t0_0_returns_the_normal_image(micro_model, tmp_path, capsys):
    out = tmp_path / "t0"
    status, _, err = run_cli([*sdas_args(micro_model, out), "-n", 3, "-o", "t0=0"], capsys)
    assert status == 0, err
    brick = load_category(None, "brick", size=16)
    for row in read_rows(out):
        assert row["t0"] == 0 and row["mask"] is None and row["mask_source"] == "perlin"
        assert row["mask_threshold"] is None
        assert np.array_equal(row["image"], brick.train_images[brick.train_ids.index(row["source"])])


def aligned_mask_area(model: Path, s: float, mask: str = "aligned", t0: int | None = None) -> list[int]:
    from synth.generators.sdas import SDAS
    from synth.pipeline.rng import per_sample_rng

    generator = SDAS(str(model), "brick", 32, strength=(s, s), steps=4, blend=True, foreground="none",
                     t0=t0, mask_source=mask)
    brick = load_category(None, "brick", size=32)
    samples = generator.generate_batch(brick.train_images[:4], [per_sample_rng(0, i) for i in range(4)])
    return [int(np.count_nonzero(sample.mask)) for sample in samples]


def test_aligned_mask_is_empty_at_s0_and_grows_with_s(micro_model):
    areas = [sum(aligned_mask_area(micro_model, s)) for s in (0.0, 0.5, 2.0, 8.0)]
    assert areas[0] == 0 and all(a < b for a, b in zip(areas, areas[1:])), areas
    assert sum(aligned_mask_area(micro_model, 0.0, t0=600)) == 0 < sum(aligned_mask_area(micro_model, 8.0, t0=600))


def test_both_is_the_perlin_mask_cut_to_the_aligned_one(micro_model):
    perlin, both = aligned_mask_area(micro_model, 2.0, "perlin"), aligned_mask_area(micro_model, 2.0, "both")
    assert all(b <= p for b, p in zip(both, perlin)) and 0 < sum(both) < sum(perlin)


def test_aligned_blend_mask_is_exactly_the_changed_pixels(micro_model, tmp_path, capsys):
    out = tmp_path / "aligned"
    args = [*sdas_args(micro_model, out), "-n", 4, "--blend", "--size", 32, "--s", "4",
            "-o", "t0=600", "-o", "mask=aligned", "-o", "mask_threshold=6"]
    status, _, err = run_cli(args, capsys)
    assert status == 0, err
    brick = load_category(None, "brick", size=32)
    rows = read_rows(out)
    assert sum(np.count_nonzero(row["mask"]) for row in rows) > 0
    for row in rows:
        assert (row["t0"], row["mask_source"], row["mask_threshold"]) == (600, "aligned", 6.0)
        changed = (row["image"] != brick.train_images[brick.train_ids.index(row["source"])]).any(axis=2)
        assert np.array_equal(row["mask"] > 0, changed)
