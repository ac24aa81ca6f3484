"""Training loop of the DDPM behind SDAS: hybrid loss, AdamW, EMA, resumable checkpoints, accelerate.

Data order, crop positions, timesteps, noise and flips of step n are a function of (seed, n) alone,
and every checkpoint holds the model, optimizer, EMA, loss history and RNG state, so a resumed run
ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from diffusers import UNet2DModel
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from synth.data import DEFAULT_CATEGORY
from synth.data.layouts import license_note
from synth.data.size import ImageSize
from synth.diffusion.card import grid, loss_curve, model_card, write_png
from synth.diffusion.data import TrainingSet, load_training_set, resolve_categories
from synth.diffusion.losses import DEFAULT_LOSS, hybrid_loss, training_noise
from synth.diffusion.model import CONFIG_NAME, ModelConfig, build_unet, save_model
from synth.diffusion.precision import fast_bf16
from synth.diffusion.presets import get_preset
from synth.diffusion.sampler import SDASSampler, image_generators, to_uint8
from synth.diffusion.schedule import DEFAULT_SAMPLING_STEPS, DEFAULT_SPACING, Schedule, q_sample
from synth.errors import SynthError
from synth.pipeline.distributed import world
from synth.quality import response  # the module: it imports synth.diffusion in turn
from synth.safety.locking import entries, output_lock

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = 1
EMA_DECAY = 0.9999
GRAD_CLIP = 1.0
# Options that must not change between a run and its resumption (else the result would differ).
RESUME_KEYS = ("seed", "batch_size", "lr", "hflip", "precision", "loss", "crops_from")


@dataclass
class TrainOptions:
    """Everything ``synth train`` needs; None means the preset's default."""

    out: Path
    category: str = DEFAULT_CATEGORY  # one name, "a,b,c" or "all"
    preset: str = "tiny"
    steps: int = 1000
    data: Path | None = None
    layout: str | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int = 0
    checkpoint_every: int = 500
    sample_every: int = 1000
    resume: bool = False
    overwrite: bool = False
    hflip: bool = False
    precision: str = "auto"  # auto (bf16 where the device runs it fast, else fp32), fp32 or bf16
    loss: str = DEFAULT_LOSS  # training remedy: offset, mean, or paper (plain hybrid loss)
    save_dtype: str = "fp32"  # dtype of the saved weights: fp32, or fp16 to ship small
    crops_from: ImageSize | None = None  # train on preset-size crops of the images loaded at this size
    sample_steps: int = 50
    num_samples: int = 16
    progress: bool = True
    command: str = ""


def _seed_for(seed: int, stream: int, counter: int) -> int:
    return int(np.random.SeedSequence([seed, stream, counter]).generate_state(1, np.uint64)[0] >> 1)


def batch_indices(seed: int, step: int, batch_size: int, num_images: int) -> torch.Tensor:
    """Image indices of global batch ``step``: consecutive slices of one permutation per epoch."""
    positions = torch.arange(step * batch_size, (step + 1) * batch_size)
    indices = torch.empty(batch_size, dtype=torch.long)
    for epoch in torch.unique(positions // num_images).tolist():
        order = torch.randperm(num_images, generator=torch.Generator().manual_seed(_seed_for(seed, 0, epoch)))
        chosen = positions // num_images == epoch
        indices[chosen] = order[positions[chosen] % num_images]
    return indices


def random_crops(images: torch.Tensor, crop: int, seed: int, step: int) -> torch.Tensor:
    """A ``crop`` x ``crop`` window of each image [B, C, H, W] of global batch ``step``, at a position drawn
    from its own stream of (seed, step), so a run without crops draws exactly what it drew before."""
    generator = torch.Generator().manual_seed(_seed_for(seed, 2, step))
    height, width = images.shape[-2:]
    tops = torch.randint(0, height - crop + 1, (len(images),), generator=generator).tolist()
    lefts = torch.randint(0, width - crop + 1, (len(images),), generator=generator).tolist()
    return torch.stack([image[:, top:top + crop, left:left + crop] for image, top, left in zip(images, tops, lefts)])


def make_batch(data: TrainingSet, seed: int, step: int, batch_size: int, num_timesteps: int,
               hflip: bool, loss: str = "paper",
               crop: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x0 in [−1, 1], class labels, timestep indices, noise) of global batch ``step``.

    The noise is the remedy's training noise (offset noise for ``loss="offset"``); every remedy sees
    the same images, timesteps and white noise. ``crop``: train on random crops of that side.
    """
    indices = batch_indices(seed, step, batch_size, len(data))
    generator = torch.Generator().manual_seed(_seed_for(seed, 1, step))
    images = data.images[indices]
    if crop is not None:
        images = random_crops(images, crop, seed, step)
    x0 = images.float() / 127.5 - 1.0
    timesteps = torch.randint(0, num_timesteps, (batch_size,), generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    if hflip:
        flip = torch.rand(batch_size, generator=generator) < 0.5
        x0 = torch.where(flip.view(-1, 1, 1, 1), x0.flip(-1), x0)
    return x0, data.labels[indices], timesteps, training_noise(noise, loss, generator)


def training_step(accelerator: Accelerator, unet: torch.nn.Module, optimizer: torch.optim.Optimizer,
                  ema: EMAModel, schedule: Schedule, x0: torch.Tensor, labels: torch.Tensor | None,
                  index: torch.Tensor, noise: torch.Tensor, loss_name: str = "paper") -> torch.Tensor:
    """One optimisation step on a batch (hybrid loss, clipped gradients, EMA update); the detached loss."""
    x_t = q_sample(schedule, x0, index, noise)
    with accelerator.autocast():
        output = unet(x_t, schedule.timesteps[index], class_labels=labels).sample
    loss, _, _ = hybrid_loss(schedule, output, x0, x_t, index, noise, loss_name)
    accelerator.backward(loss)
    accelerator.clip_grad_norm_(unet.parameters(), GRAD_CLIP)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    ema.step(accelerator.unwrap_model(unet).parameters())
    return loss.detach()


def resolve_precision(precision: str) -> str:
    """"bf16" or "no" (accelerate's names); auto picks bf16 where ``fast_bf16`` says it pays."""
    if precision not in ("auto", "fp32", "bf16"):
        raise SynthError(f"unknown precision {precision!r}; choose auto, fp32 or bf16")
    if precision == "auto":
        return "bf16" if fast_bf16(torch.device("cuda" if torch.cuda.is_available() else "cpu")) else "no"
    return "bf16" if precision == "bf16" else "no"


def check_output(out: Path, config: ModelConfig, resume: bool, overwrite: bool) -> None:
    """SynthError unless ``out`` is new, empty, the same model being resumed, or --overwrite is given."""
    if not out.exists():
        return
    if not out.is_dir():
        raise SynthError(f"--out {out} exists and is not a directory")
    if not entries(out):
        return
    if not (out / CONFIG_NAME).is_file():  # --overwrite replaces only what synth wrote
        raise SynthError(f"--out {out} is not empty and holds no synth model; choose a new or empty directory")
    if overwrite:
        return
    existing = ModelConfig.read(out)
    if not existing.same_model(config):
        crops = f", crops of {existing.crops_from}" if existing.crops_from else ""
        raise SynthError(f"--out {out} holds a different model (category {existing.category}, preset "
                         f"{existing.preset}, size {existing.size}{crops}); use --overwrite to replace it")
    if not resume:
        raise SynthError(f"--out {out} already holds this model; use --resume to continue or --overwrite")


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save to a temporary file, then an atomic rename."""
    temporary = path.with_name(path.name + ".tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)


def load_checkpoint(path: Path, run_options: dict) -> dict:
    """The checkpoint at ``path``; SynthError if it is unreadable or from different options."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        step, stored = int(state["step"]), state["options"]
        if state.get("format") != CHECKPOINT_FORMAT or not {"model", "optimizer", "ema", "losses"} <= set(state):
            raise KeyError("format")
    except Exception as error:  # noqa: BLE001  (any failure to read it means a corrupt file)
        raise SynthError(f"checkpoint {path} is corrupt or unreadable ({type(error).__name__}); "
                         "remove it or use --overwrite") from None
    changed = [key for key in RESUME_KEYS if stored.get(key) != run_options[key]]
    if changed:
        raise SynthError(f"cannot resume {path}: {', '.join(f'{k} was {stored.get(k)!r}' for k in changed)}")
    if step < 0:
        raise SynthError(f"checkpoint {path} has a negative step")
    return state


def sample_grid(unet: UNet2DModel, config: ModelConfig, options: TrainOptions, bf16: bool) -> np.ndarray:
    """A grid of s = 0 samples from ``unet`` (fixed seeds, so grids of different steps compare)."""
    count = options.num_samples
    labels = torch.arange(count) % config.num_classes if config.num_classes else None
    images = SDASSampler(unet, options.sample_steps, bf16=bf16).sample(
        count, 0.0, image_generators(options.seed, range(count)), class_labels=labels)
    return grid(to_uint8(images))


def train(options: TrainOptions) -> ModelConfig:
    """Train (or resume) a model into ``options.out``; returns its config. Only process 0 writes, holding
    the directory's writer lock."""
    with output_lock(Path(options.out)) if world()[0] == 0 else nullcontext():
        return _train(options)


def _train(options: TrainOptions) -> ModelConfig:
    preset = get_preset(options.preset)
    for name in ("steps", "checkpoint_every", "sample_every", "sample_steps", "num_samples", "batch_size"):
        if getattr(options, name) is not None and getattr(options, name) < 1:
            raise SynthError(f"--{name.replace('_', '-')} must be at least 1")
    if options.lr is not None and not options.lr > 0:
        raise SynthError(f"--lr must be positive, got {options.lr}")
    out = Path(options.out)
    data_root = Path(options.data) if options.data is not None else None
    class_names = resolve_categories(options.category, data_root)
    crops_from = None if options.crops_from is None else ImageSize.coerce(options.crops_from)
    if crops_from is not None and min(crops_from.shape) < preset.size:
        raise SynthError(f"--crops-from {crops_from} is smaller than the preset's {preset.size} px crops; "
                         f"give each side at least {preset.size}")
    # the data root's folder name only: model configs and cards are shared, machine paths are not
    config = ModelConfig(class_names, preset.name, preset.size, 0, data_root.name if data_root else None,
                         loss=options.loss, crops_from=None if crops_from is None else str(crops_from))
    check_output(out, config, options.resume, options.overwrite)
    run_options = dict(seed=options.seed, batch_size=options.batch_size if options.batch_size is not None else preset.batch_size,
                       lr=options.lr if options.lr is not None else preset.lr, hflip=options.hflip,
                       precision=resolve_precision(options.precision), loss=options.loss,
                       crops_from=config.crops_from)
    # cpu=True without CUDA: accelerate only sets up multi-process CPU training (gloo) when asked to.
    accelerator = Accelerator(mixed_precision=run_options["precision"], cpu=not torch.cuda.is_available())
    batch_size = run_options["batch_size"]
    if batch_size % accelerator.num_processes:
        raise SynthError(f"--batch-size {batch_size} is not divisible by {accelerator.num_processes} processes")
    checkpoint_path = out / CHECKPOINT_NAME
    if options.resume and not options.overwrite and not checkpoint_path.is_file():
        raise SynthError(f"nothing to resume in {out}: no {CHECKPOINT_NAME} (leave out --resume to train from scratch)")
    state = load_checkpoint(checkpoint_path, run_options) if (
        options.resume and not options.overwrite and checkpoint_path.is_file()) else None
    crop = None if crops_from is None else preset.size
    data = load_training_set(data_root, class_names, crops_from or preset.size, options.layout, crop)

    torch.manual_seed(options.seed)
    unet = build_unet(preset.name, config.num_classes)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=run_options["lr"], weight_decay=0.0)
    ema = EMAModel(unet.parameters(), decay=EMA_DECAY)
    step, losses, elapsed = 0, [], 0.0
    if state is not None:
        unet.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        ema.load_state_dict(state["ema"])
        step, losses, elapsed = int(state["step"]), list(state["losses"]), float(state["elapsed"])
    eval_unet = build_unet(preset.name, config.num_classes).to(accelerator.device).eval()
    if state is not None:  # after every draw an uninterrupted run makes before its first step
        torch.set_rng_state(state["rng"])
    unet, optimizer = accelerator.prepare(unet, optimizer)
    ema.to(accelerator.device)
    schedule = Schedule.linear().to(accelerator.device)
    if accelerator.is_main_process:
        if options.overwrite:  # a fresh run: drop the old run's checkpoint and sample grids
            checkpoint_path.unlink(missing_ok=True)
            shutil.rmtree(out / "samples", ignore_errors=True)
        out.mkdir(parents=True, exist_ok=True)
        config.write(out)

    local = batch_size // accelerator.num_processes
    part = slice(accelerator.process_index * local, (accelerator.process_index + 1) * local)
    bf16 = run_options["precision"] == "bf16"
    if options.progress and accelerator.is_main_process:
        tqdm.write(f"training {config.category}: loss {options.loss}, precision "
                   f"{'bf16' if bf16 else 'fp32'} ({options.precision}) on {accelerator.device.type}")
    bar = tqdm(total=options.steps, initial=step, desc=f"train {config.category}", unit="step",
               disable=not (options.progress and accelerator.is_main_process))
    started = time.perf_counter() - elapsed
    unet.train()
    while step < options.steps:
        x0, labels, index, noise = (v[part].to(accelerator.device) for v in make_batch(
            data, options.seed, step, batch_size, len(schedule), options.hflip, options.loss, crop))
        loss = training_step(accelerator, unet, optimizer, ema, schedule, x0,
                             labels if config.num_classes else None, index, noise, options.loss)
        losses.append(accelerator.reduce(loss, "mean").item())
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-100:]):.4f}")
        if accelerator.is_main_process and (step % options.sample_every == 0 or step == options.steps):
            ema.copy_to(eval_unet.parameters())
            write_png(out / "samples" / f"step-{step:07d}.png", sample_grid(eval_unet, config, options, bf16))
        if accelerator.is_main_process and (step % options.checkpoint_every == 0 or step == options.steps):
            save_checkpoint(checkpoint_path, dict(
                format=CHECKPOINT_FORMAT, step=step, options=run_options, config=asdict(config),
                model=accelerator.unwrap_model(unet).state_dict(), optimizer=optimizer.state_dict(),
                ema=ema.state_dict(), losses=losses, rng=torch.get_rng_state(),
                elapsed=time.perf_counter() - started))
    bar.close()
    config.steps = step
    if accelerator.is_main_process:
        ema.copy_to(eval_unet.parameters())
        save_model(eval_unet, out, config, torch.float16 if options.save_dtype == "fp16" else None)
        write_png(out / "loss.png", loss_curve(losses))
        final = float(np.mean(losses[-100:])) if losses else None
        licence = license_note(data_root, class_names[0]) if len(class_names) == 1 else ""
        seconds = time.perf_counter() - started
        responses = response.save_responses(out, DEFAULT_SAMPLING_STEPS, DEFAULT_SPACING, accelerator.device,
                                            options.progress)
        (out / "README.md").write_text(model_card(config, options.command, seconds, final, licence,
                                                  response.response_markdown(responses)))
    accelerator.wait_for_everyone()
    return config
