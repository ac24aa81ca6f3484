"""Crop-trained models (`synth train --crops-from`): random crops of (seed, step), exact resume, the config and
card, and SDAS sampling at the requested size with no upscaling; plain models keep their behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from synth.data import load_category
from synth.data.size import ImageSize
from synth.diffusion import ModelConfig, TrainOptions, build_unet, load_model, save_model, train
from synth.diffusion.card import crops_note
from synth.diffusion.data import TrainingSet
from synth.diffusion.sampler import SDASSampler, image_generators
from synth.diffusion.train import load_checkpoint, make_batch
from synth.errors import SynthError
from synth.generators.sdas import SDAS
from tests.conftest import run_cli, write_image
from tests.test_diffusion_train import micro, one_thread, weights  # noqa: F401  (one_thread: autouse fixture)
from tests.test_sdas_gen import read_rows


@pytest.fixture(scope="module")
def crop_model(tmp_path_factory) -> Path:
    """An untrained micro model (16 px) marked as trained on crops of 32 px images (sampling plumbing only)."""
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("models") / "brick-crops"
    save_model(build_unet("micro"), directory, ModelConfig(["brick"], "micro", 16, crops_from="32"))
    return directory


def test_crops_are_windows_drawn_from_seed_and_step():
    images = torch.arange(4 * 3 * 32 * 48, dtype=torch.float32).reshape(4, 3, 32, 48).to(torch.uint8)
    data = TrainingSet(images, torch.zeros(4, dtype=torch.long), ["x"])
    first = make_batch(data, 0, 5, 4, 1000, False, "offset", crop=16)
    again = make_batch(data, 0, 5, 4, 1000, False, "offset", crop=16)
    assert first[0].shape == (4, 3, 16, 16) and all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], make_batch(data, 0, 6, 4, 1000, False, "offset", crop=16)[0])
    plain = make_batch(data, 0, 5, 4, 1000, False, "offset")
    assert torch.equal(first[2], plain[2])  # the timesteps of the run without crops: crops have their own stream
    # each crop is a window of its image
    whole = plain[0]
    for crop, image in zip(first[0], whole):
        windows = image.unfold(1, 16, 1).unfold(2, 16, 1)  # [3, 17, 33, 16, 16]
        assert (windows == crop[:, None, None]).flatten(3).all(-1).all(0).any()


def test_crops_training_resumes_exactly(tmp_path):
    crops = dict(crops_from=ImageSize.square(32))
    train(micro(tmp_path / "whole", steps=4, checkpoint_every=2, **crops))
    train(micro(tmp_path / "split", steps=2, checkpoint_every=2, **crops))
    train(micro(tmp_path / "split", steps=4, checkpoint_every=2, resume=True, **crops))
    whole, split = weights(tmp_path / "whole"), weights(tmp_path / "split")
    assert all(torch.equal(whole[k], split[k]) for k in whole)
    train(micro(tmp_path / "plain", steps=4, checkpoint_every=2))
    assert not all(torch.equal(whole[k], v) for k, v in weights(tmp_path / "plain").items())
    options = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)["options"]
    with pytest.raises(SynthError, match="crops_from was '32'"):
        load_checkpoint(tmp_path / "whole" / "checkpoint.pt", {**options, "crops_from": "48"})
    with pytest.raises(SynthError, match="different model .*crops of 32"):
        train(micro(tmp_path / "whole", steps=6, resume=True))


def test_config_and_card_record_the_crops(tmp_path):
    out = tmp_path / "m"
    train(micro(out, steps=1, crops_from=ImageSize(32, 48)))
    config = load_model(out)[1]
    assert (config.size, config.crops_from, config.crop_source) == (16, "32x48", ImageSize(32, 48))
    assert json.loads((out / "synth_config.json").read_text())["crops_from"] == "32x48"
    note = "trained on 16 px crops of images at 32x48; samples at any size whose sides are multiples of 2"
    assert crops_note(config) == note and note in (out / "README.md").read_text()
    config.write(tmp_path)
    assert ModelConfig.read(tmp_path) == config
    plain = ModelConfig(["brick"], "micro", 16)
    plain.write(tmp_path)
    assert "crops_from" not in json.loads((tmp_path / "synth_config.json").read_text())  # same bytes as before
    assert crops_note(plain) == "" and not plain.same_model(config)


@pytest.mark.parametrize("size", ["32", "16x32"])
def test_crop_model_samples_at_the_size_without_upscaling(crop_model, tmp_path, capsys, size):
    out = tmp_path / "raw"
    args = ["gen", "--generator", "sdas", "--category", "brick", "--model", crop_model, "--size", size,
            "--steps", 2, "-n", 3, "--out", out]
    status, _, err = run_cli(args, capsys)
    assert status == 0, err
    expected = ImageSize.coerce(size)
    for row in read_rows(out):
        assert row["image"].shape == (*expected.shape, 3) and row["image"].std() > 0
        assert not row["upscaled"] and row["model_size"] == 16 and row["sample_size"] == size
    manifest = json.loads((out / "manifest.json").read_text())
    assert json.dumps(manifest).count('"model_crops_from": "32"') == 1


def test_crop_model_unet_runs_at_256(crop_model):
    unet, _ = load_model(crop_model)
    images = SDASSampler(unet, 1, image_size=(256, 256)).sample(1, 0.0, image_generators(0, [0]))
    assert images.shape == (1, 3, 256, 256) and torch.isfinite(images).all() and images.std() > 0


def test_crop_model_t0_and_mask_use_the_sample_size(crop_model):
    brick = load_category(None, "brick", size=32)
    generator = SDAS(str(crop_model), "brick", 32, steps=2, t0=0, blend=True, mask_source="aligned")
    assert generator.sample_size == ImageSize.square(32) and generator._kernel() == 3
    from synth.pipeline.rng import per_sample_rng

    images, _ = generator._sample(brick.train_images[:2], [0.0, 0.0],
                                  [torch.Generator().manual_seed(i) for i in range(2)])
    assert all(np.array_equal(image, normal) for image, normal in zip(images, brick.train_images[:2]))
    sample = generator.generate(brick.train_images[0], per_sample_rng(0, 0))
    assert sample.image.shape == (32, 32, 3) and not sample.params["upscaled"]


@pytest.mark.parametrize("args, message", [
    (["gen", "--size", "33"], "multiples of 2; --size 33 is not"),
    (["gen", "--size", "32x17"], "multiples of 2; --size 32x17 is not"),
    (["train", "--crops-from", "8"], "smaller than the preset's 16 px crops"),
    (["train", "--crops-from", "big"], "size must be SIDE or HEIGHTxWIDTH"),
])
def test_bad_crop_sizes_are_one_line_errors(crop_model, tmp_path, capsys, args, message):
    command, *rest = args
    common = (["--generator", "sdas", "--category", "brick", "--model", crop_model, "--steps", 2, "-n", 1]
              if command == "gen" else ["--category", "brick", "--preset", "micro", "--steps", 1])
    status, _, err = run_cli([command, *common, "--out", tmp_path / "x", *rest], capsys)
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_crops_need_sources_of_crop_size_only(tmp_path):
    """Sources under --crops-from are resized up to it (as detectors do); under the crop side they are refused."""
    for index in range(2):
        write_image(tmp_path / "data" / "widget" / f"{index}.png", np.full((24, 40, 3), 100, np.uint8))
        write_image(tmp_path / "small" / "widget" / f"{index}.png", np.full((12, 40, 3), 100, np.uint8))
    train(micro(tmp_path / "m", data=tmp_path / "data", category="widget", layout="folder",
                crops_from=ImageSize.square(32)))
    assert (tmp_path / "m" / "synth_config.json").is_file()
    with pytest.raises(SynthError, match=r"is 40x12, smaller than the preset's 16x16"):
        train(micro(tmp_path / "n", data=tmp_path / "small", category="widget", layout="folder",
                    crops_from=ImageSize.square(32)))
    assert not (tmp_path / "n").exists()


def test_plain_model_keeps_its_rows(tmp_path, capsys):
    torch.manual_seed(0)
    model = tmp_path / "plain"
    save_model(build_unet("micro"), model, ModelConfig(["brick"], "micro", 16))
    args = ["gen", "--generator", "sdas", "--category", "brick", "--model", model, "--steps", 2, "-n", 2]
    assert run_cli([*args, "--size", 32, "--out", tmp_path / "a"], capsys)[0] == 0
    table = pq.read_table(tmp_path / "a" / "data")
    assert "sample_size" not in table.column_names and all(table["upscaled"].to_pylist())
    status, _, err = run_cli([*args, "--size", "16x32", "--out", tmp_path / "b"], capsys)
    assert status == 2 and "needs --blend" in err
