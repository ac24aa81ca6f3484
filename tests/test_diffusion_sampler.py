"""SDAS sampler: s = 0 is DDPM ancestral sampling, larger s moves further, per-image independence,
image-conditioned starts (SDEdit) and s = 0 twins."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler

from synth.diffusion import SDASSampler, build_unet, image_generators, load_model, save_model
from synth.diffusion.model import ModelConfig
from synth.diffusion.sampler import twin_generators
from synth.diffusion.schedule import Schedule, q_sample
from synth.errors import SynthError


@pytest.fixture(scope="module")
def unet():
    torch.manual_seed(0)
    model = build_unet("micro").eval()
    with torch.no_grad():  # keep v inside [-1, 1] so that diffusers' unclamped step is comparable
        model.conv_out.weight[3:] *= 0.05
        model.conv_out.bias[3:] *= 0.05
    return model


def test_s0_equals_diffusers_ddpm_learned_range(unet):
    torch.set_num_threads(1)
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear",
                              variance_type="learned_range", clip_sample=True)
    scheduler.set_timesteps(1000)
    generator = torch.Generator().manual_seed(7)
    x = torch.randn((1, 3, 16, 16), generator=generator)
    with torch.no_grad():
        for t in scheduler.timesteps:
            out = unet(x, t.expand(1)).sample
            assert out[:, 3:].abs().max() <= 1.0
            x = scheduler.step(out, t, x, generator=generator).prev_sample
    ours = SDASSampler(unet, 1000).sample(1, torch.zeros(1), [torch.Generator().manual_seed(7)])
    torch.testing.assert_close(ours, x.clamp(-1, 1), atol=2e-4, rtol=0)


def test_distance_from_s0_grows_with_s(unet):
    sampler = SDASSampler(unet, 20)
    distances = []
    for s in (0.0, 0.5, 2.0, 8.0):
        images = sampler.sample(4, torch.full((4,), s), image_generators(3, range(4)))
        if s == 0.0:
            reference = images
        distances.append((images - reference).abs().mean().item())
    assert distances[0] == 0.0
    assert all(a < b for a, b in zip(distances, distances[1:])), distances


def test_sample_does_not_depend_on_batch(unet):
    sampler = SDASSampler(unet, 10)
    strengths = torch.tensor([0.0, 1.0, 3.0])
    together = sampler.sample(3, strengths, image_generators(5, [0, 1, 2]))
    alone = sampler.sample(1, strengths[2:], image_generators(5, [2]))
    torch.testing.assert_close(together[2:], alone, atol=1e-5, rtol=0)
    assert together.min() >= -1 and together.max() <= 1


def test_sampler_needs_one_generator_per_image(unet):
    with pytest.raises(SynthError):
        SDASSampler(unet, 10).sample(torch.zeros(2, 3, 16, 16), 0.0, image_generators(0, [0]))
    with pytest.raises(SynthError):
        SDASSampler(unet, 10).sample(2, torch.zeros(3), image_generators(0, [0, 1]))


def test_save_load_round_trip(unet, tmp_path):
    config = ModelConfig(["brick"], "micro", 16, steps=3)
    save_model(unet, tmp_path, config)
    loaded, loaded_config = load_model(tmp_path)
    assert loaded_config == config
    for name, value in unet.state_dict().items():  # the same weights, bit for bit
        assert torch.equal(loaded.state_dict()[name], value), name
    assert loaded.conv_in.weight.is_contiguous(memory_format=torch.channels_last)  # faster on a CPU
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([5, 900])
    with torch.no_grad():  # channels-last changes only the summation order
        torch.testing.assert_close(loaded(x, t).sample, unet(x, t).sample, atol=1e-5, rtol=1e-4)
    save_model(unet, tmp_path / "fp16", config, dtype=torch.float16)  # how the bundled model ships
    assert unet.dtype == torch.float32
    upcast, _ = load_model(tmp_path / "fp16")
    assert upcast.dtype == torch.float32
    with torch.no_grad():
        torch.testing.assert_close(upcast(x, t).sample, unet(x, t).sample, atol=2e-2, rtol=0)


def test_load_model_errors(tmp_path):
    with pytest.raises(SynthError):
        load_model(tmp_path / "missing")
    with pytest.raises(SynthError):
        load_model(tmp_path)  # exists but holds no model


def test_edit_with_t0_0_returns_the_input(unet):
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    edited = SDASSampler(unet, 10).edit(images, 0, torch.tensor([0.0, 2.0]), image_generators(0, [0, 1]))
    assert torch.equal(edited, images)


def test_edit_noises_like_diffusers_add_noise_from_the_last_kept_step(unet):
    schedule = Schedule.linear(1000, 20, "ddim")
    start = schedule.last_position_at(420)
    assert int(schedule.timesteps[start]) == 400 and schedule.last_position_at(400) == start
    x0, noise = torch.rand(2, 3, 16, 16) * 2 - 1, torch.randn(2, 3, 16, 16)
    reference = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear").add_noise(x0, noise, torch.tensor([400]))
    torch.testing.assert_close(q_sample(schedule, x0, start, noise), reference, atol=1e-5, rtol=0)
    calls = []
    hook = unet.register_forward_hook(lambda module, args, kwargs_or_out: calls.append(int(args[1][0])))
    try:
        SDASSampler(unet, 20, spacing="ddim").edit(x0, 420, 0.5, image_generators(0, [0, 1]))
    finally:
        hook.remove()
    assert calls == list(range(400, -1, -50))  # 9 steps: 400, 350, ..., 0
    with pytest.raises(SynthError, match="t0"):
        SDASSampler(unet, 20).edit(x0, 1000, 0.5, image_generators(0, [0, 1]))


def test_edit_stays_closer_to_the_input_for_smaller_t0(unet):
    sampler = SDASSampler(unet, 20, spacing="ddim")
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    distances = [(sampler.edit(images, t0, 0.0, image_generators(1, [0, 1])) - images).abs().mean().item()
                 for t0 in (0, 100, 999)]
    assert distances[0] == 0 < distances[1] < distances[2]


def test_twin_generators_draw_the_same_noise(unet):
    """A sample and its s = 0 twin in one batch: the twin is the plain s = 0 sample of the same seed."""
    sampler = SDASSampler(unet, 10)
    generators = image_generators(4, [0, 1])
    both = sampler.sample(4, torch.tensor([2.0, 2.0, 0.0, 0.0]), generators + twin_generators(generators))
    torch.testing.assert_close(both[2:], sampler.sample(2, 0.0, image_generators(4, [0, 1])), atol=1e-5, rtol=0)
    torch.testing.assert_close(both[:2], sampler.sample(2, 2.0, image_generators(4, [0, 1])), atol=1e-5, rtol=0)
    assert (both[:2] - both[2:]).abs().mean() > 0.01
