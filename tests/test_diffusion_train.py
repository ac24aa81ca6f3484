"""DDPM training: the loss falls, resuming is exact, outputs load back, bad input is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import UNet2DModel
from safetensors.torch import load_file

from synth.diffusion import TrainOptions, build_unet, get_preset, load_model, train
from synth.errors import SynthError
from tests.conftest import run_cli, write_image


def micro(out: Path, **changes) -> TrainOptions:
    options = dict(out=out, category="brick", preset="micro", steps=6, checkpoint_every=3, sample_every=100,
                   sample_steps=4, num_samples=4, progress=False)
    return TrainOptions(**{**options, **changes})


def weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(directory / "diffusion_pytorch_model.safetensors")


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_loss_decreases(tmp_path):
    train(micro(tmp_path / "m", steps=40, checkpoint_every=40))
    losses = torch.load(tmp_path / "m" / "checkpoint.pt", weights_only=True)["losses"]
    assert len(losses) == 40
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10])


def test_resume_equals_uninterrupted_run(tmp_path):
    train(micro(tmp_path / "whole", steps=8, checkpoint_every=4))
    train(micro(tmp_path / "split", steps=4, checkpoint_every=4))
    train(micro(tmp_path / "split", steps=8, checkpoint_every=4, resume=True))
    whole, split = weights(tmp_path / "whole"), weights(tmp_path / "split")
    assert all(torch.equal(whole[k], split[k]) for k in whole)
    a = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)
    assert a["losses"] == b["losses"]
    assert all(torch.equal(x, y) for x, y in zip(a["ema"]["shadow_params"], b["ema"]["shadow_params"]))


def test_outputs_load_back(tmp_path):
    out = tmp_path / "m"
    train(micro(out, steps=3, command="synth train --preset micro"))
    unet, config = load_model(out)
    assert (config.class_names, config.preset, config.size, config.steps) == (["brick"], "micro", 16, 3)
    assert UNet2DModel.from_pretrained(out).config.out_channels == 6
    assert (out / "loss.png").is_file() and (out / "samples" / "step-0000003.png").is_file()
    card = (out / "README.md").read_text()
    assert "brick" in card and "synth train --preset micro" in card
    x, t = torch.randn(1, 3, 16, 16), torch.tensor([10])
    with torch.no_grad():
        assert torch.isfinite(unet(x, t).sample).all()


def test_class_conditional_model(tmp_path):
    out = tmp_path / "multi"
    train(micro(out, category="brick,grass", steps=2))
    unet, config = load_model(out)
    assert config.class_names == ["brick", "grass"] and unet.config.num_class_embeds == 2
    with torch.no_grad():
        x, t = torch.randn(2, 3, 16, 16), torch.tensor([500, 500])
        a = unet(x, t, class_labels=torch.tensor([0, 0])).sample
        b = unet(x, t, class_labels=torch.tensor([0, 1])).sample
    assert torch.equal(a[0], b[0]) and not torch.equal(a[1], b[1])


def test_refuses_to_overwrite_a_different_model(tmp_path):
    out = tmp_path / "m"
    train(micro(out, steps=2))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(SynthError, match="different model"):
        train(micro(out, category="grass", steps=2))
    with pytest.raises(SynthError, match="--resume"):
        train(micro(out, steps=2))
    assert before == {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    train(micro(out, category="grass", steps=1, overwrite=True))
    assert load_model(out)[1].class_names == ["grass"]
    assert [p.name for p in (out / "samples").iterdir()] == ["step-0000001.png"]  # old grids gone


def test_corrupt_checkpoint_and_changed_options(tmp_path):
    out = tmp_path / "m"
    train(micro(out, steps=2))
    with pytest.raises(SynthError, match="lr"):
        train(micro(out, steps=4, resume=True, lr=0.5))
    (out / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SynthError, match="corrupt"):
        train(micro(out, steps=4, resume=True))


@pytest.mark.parametrize("count, side, message", [(1, 32, "at least 2"), (2, 8, "smaller than")])
def test_bad_data(tmp_path, count, side, message):
    for index in range(count):
        write_image(tmp_path / "data" / "widget" / f"{index}.png", np.full((side, side, 3), 100, np.uint8))
    with pytest.raises(SynthError, match=message):
        train(micro(tmp_path / "m", data=tmp_path / "data", category="widget", layout="folder"))
    assert not (tmp_path / "m").exists()


def test_unknown_preset_and_bad_numbers(tmp_path):
    with pytest.raises(SynthError, match="unknown preset"):
        train(micro(tmp_path / "m", preset="huge"))
    with pytest.raises(SynthError, match="--steps"):
        train(micro(tmp_path / "m", steps=0))


def test_cli_command(tmp_path, capsys):
    out = tmp_path / "m"
    status, stdout, _ = run_cli(["train", "--preset", "micro", "--steps", "2", "--out", out, "--sample-steps", "2",
                                 "--threads", "1"], capsys)
    assert status == 0 and "saved" in stdout and load_model(out)[1].steps == 2
    # the card records the command as given to main(), its output folder as a role, not this machine's path
    card = (out / "README.md").read_text()
    assert "synth train --preset micro --steps 2 --out" in card and str(tmp_path) not in card
    status, _, err = run_cli(["train", "--preset", "nope", "--out", tmp_path / "x"], capsys)
    assert status == 2 and "nope" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["micro", "tiny", "compact"])
def test_presets_build_unets_that_predict_noise_and_variance(name):
    preset = get_preset(name)
    unet = build_unet(name)
    with torch.no_grad():
        out = unet(torch.zeros(1, 3, preset.size, preset.size), torch.tensor([10])).sample
    assert out.shape == (1, 6, preset.size, preset.size)
    attention_sides = {preset.size // 2 ** level for level, block in enumerate(unet.down_blocks)
                       if "Attn" in type(block).__name__}
    assert attention_sides == set(preset.attention_resolutions)


def test_compact_preset_is_smaller_than_tiny():
    def params(name: str) -> int:
        return sum(p.numel() for p in build_unet(name).parameters())
    assert params("compact") < 0.6 * params("tiny")
