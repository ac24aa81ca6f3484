"""A generation plan and the driver that turns it into Parquet shards.

Sample ``i`` is made from ``per_sample_rng(seed, i)`` alone, and shard ``k`` holds samples
``[k*shard_size, (k+1)*shard_size)``, so the dataset does not depend on resume points or the number of
processes (nor on batch size, but for SDAS, see docs/datasets.md): process ``p`` of ``P`` writes the shards ``k`` with ``k % P == p``.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import shlex
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import AbstractContextManager, ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from tqdm.auto import tqdm

import synth
from synth.data import Category, ImageSize, load_category
from synth.data.layouts import license_note
from synth.errors import SynthError
from synth.generators import Generator, GeneratorSettings, create_generator, per_sample_rng
from synth.pipeline import distributed
from synth.pipeline.provenance import data_role, path_roles, portable_command, portable_value
from synth.safety.locking import output_lock
from synth.safety.names import safe_name
from synth.safety.orphans import die_with_parent, parent_alive
from synth.shards import (DATASET_FORMAT, MANIFEST, ShardWriter, dataset_features, expected_rows, features_entry,
                          read_manifest, verify_dataset, write_card, write_json_atomic)
from synth.shards.directory import prepare_directory, require_directory

# Manifest fields that must match for --resume to continue a run.
IDENTITY = ("format", "generator", "settings", "category", "data", "layout", "sources_sha256", "size",
            "num_samples", "seed", "shard_size", "features")


@dataclass
class GenerationPlan:
    """What to generate, how many, from which seed, and where."""

    generator: str
    category: str
    out: Path
    num_samples: int
    data: Path | None = None
    layout: str | None = None
    size: ImageSize | int = 256  # a side means a square
    seed: int = 0
    shard_size: int = 1000
    batch_size: int = 1
    settings: GeneratorSettings = field(default_factory=GeneratorSettings)
    resume: bool = False
    overwrite: bool = False
    command: Sequence[str] = ()  # the command line as typed, word by word (made portable in the manifest)

    def __post_init__(self) -> None:
        if self.num_samples <= 0:
            raise SynthError(f"-n must be positive, got {self.num_samples}")
        if self.shard_size <= 0:
            raise SynthError(f"--shard-size must be positive, got {self.shard_size}")
        if self.batch_size <= 0:
            raise SynthError(f"--batch-size must be positive, got {self.batch_size}")
        if self.seed < 0:
            raise SynthError(f"--seed must be 0 or more, got {self.seed}")
        if self.resume and self.overwrite:
            raise SynthError("--resume and --overwrite exclude each other")
        self.out = Path(self.out)
        self.size = ImageSize.coerce(self.size)
        self.command = tuple(shlex.split(self.command) if isinstance(self.command, str) else self.command)
        self.settings.category = self.category
        self.settings.size = self.size
        self.settings.data, self.settings.layout = self.data, self.layout

    @property
    def num_shards(self) -> int:
        return -(-self.num_samples // self.shard_size)

    def shard_indices(self, shard: int) -> range:
        return range(shard * self.shard_size, min((shard + 1) * self.shard_size, self.num_samples))

    def local_paths(self, layout: str | None) -> dict[str | Path, str]:
        """The local paths this plan names, and the role that replaces each in what is published."""
        extra = self.settings.extra
        paths = {self.data: data_role(layout), self.settings.textures: "textures root", self.out: "output dir",
                 extra.get("models"): "models root", extra.get("model"): "model dir"}
        return {path: name for path, name in paths.items() if path and Path(path).exists()}

    def manifest(self, generator: Generator, category: Category) -> dict[str, Any]:
        """The manifest: what the dataset is and how it was made, with no local path in it."""
        paths = self.local_paths(category.layout)
        return {
            "format": DATASET_FORMAT, "generator": self.generator,
            "generator_params": portable_value(generator.describe(), paths),
            "settings": portable_value({**asdict(self.settings), "size": self.size.record()["size"]}, paths),
            "category": self.category,
            "data": data_role(category.layout) if self.data else None, "layout": category.layout,
            "sources_sha256": hashlib.sha256("\n".join(category.train_ids).encode()).hexdigest(),
            **self.size.record(), "num_samples": self.num_samples, "seed": self.seed, "shard_size": self.shard_size,
            "num_shards": self.num_shards, "features": features_entry(dataset_features(generator.columns)),
            "command": portable_command(self.command, path_roles(category.layout)), "version": synth.__version__,
            "num_normal_images": len(category), "complete": False,
            "source_license": license_note(self.data, self.category),
        }


def default_output_dir(category: str, generator: str) -> Path:
    """The output directory used when none is given: named after category and generator (a category
    such as ``../x`` would lead out of the working directory and is refused)."""
    return Path(f"{safe_name(category, 'category')}-{generator}")


def _batches(indices: range, size: int) -> Iterator[range]:
    for start in range(indices.start, indices.stop, size):
        yield range(start, min(start + size, indices.stop))


def generate_shard(plan: GenerationPlan, shard: int, generator: Generator, category: Category) -> list[dict[str, Any]]:
    """The rows of one shard."""
    rows: list[dict[str, Any]] = []
    for batch in _batches(plan.shard_indices(shard), plan.batch_size):
        rngs = [per_sample_rng(plan.seed, i) for i in batch]
        # a generator that ignores the normal image draws nothing for it, so its rows are the same
        # with or without --data
        picks = [category.pick(rng) if generator.uses_normal_image else None for rng in rngs]
        samples = generator.generate_batch([None if k is None else category.train_images[k] for k in picks], rngs)
        for index, pick, sample in zip(batch, picks, samples):
            rows.append({"image": sample.image, "mask": sample.mask, "index": index, "seed": plan.seed,
                         "source": None if pick is None else category.train_ids[pick], "category": plan.category,
                         "generator": plan.generator, "height": sample.image.shape[0],
                         "width": sample.image.shape[1], **sample.params})
    return rows


def write_shards(plan: GenerationPlan, process_index: int = 0, num_processes: int = 1,
                 progress: bool = True) -> None:
    """Write the missing shards ``k`` of ``plan`` with ``k % num_processes == process_index``.

    Local worker processes share the machine's cores (each gets cores // workers torch threads), so
    `--num-processes 2` on 2 cores does not run 4 threads on 2 cores.
    """
    if num_processes > 1 and not distributed.launched():
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // num_processes))
    generator = create_generator(plan.generator, plan.settings)
    category = load_source(plan, generator)
    writer = ShardWriter(plan.out, dataset_features(generator.columns), plan.num_shards)
    mine = [k for k in range(plan.num_shards) if k % num_processes == process_index]
    todo = [k for k in mine if not writer.done(k)]
    total = sum(len(plan.shard_indices(k)) for k in mine)
    done = total - sum(len(plan.shard_indices(k)) for k in todo)
    with tqdm(total=total, initial=done, unit="img", disable=not progress, position=process_index,
              desc=f"{plan.generator} {plan.category}" + (f" [{process_index}]" if num_processes > 1 else "")) as bar:
        for shard in todo:
            rows = generate_shard(plan, shard, generator, category)
            if not parent_alive():  # `synth gen` was killed: its shards are no longer this worker's to write
                os._exit(1)
            writer.write(shard, rows)
            bar.update(len(rows))


def run_plan(plan: GenerationPlan, num_processes: int = 1, progress: bool = True) -> Path:
    """Check the output directory, write the manifest, the shards and finally the dataset card.

    Shards are written by ``num_processes`` local worker processes, or, under `accelerate launch`,
    by every launched process (each on its own device), process 0 doing the bookkeeping.
    """
    if num_processes <= 0:
        raise SynthError(f"--num-processes must be positive, got {num_processes}")
    if distributed.launched():
        return _run_launched(plan, progress)
    with locked_output(plan):
        _start(plan)
        if num_processes == 1:
            write_shards(plan, 0, 1, progress)
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(num_processes, mp_context=context, initializer=die_with_parent,
                                     initargs=(os.getpid(),)) as pool:
                futures = [pool.submit(write_shards, plan, p, num_processes, progress) for p in range(num_processes)]
                for future in futures:
                    future.result()
        finalize(plan.out)
    return plan.out


def locked_output(plan: GenerationPlan) -> AbstractContextManager:
    """The writer lock of the plan's output directory (which a --resume needs to exist already)."""
    if plan.resume:
        require_directory(plan.out)
    return output_lock(plan.out)


def load_source(plan: GenerationPlan, generator: Generator) -> Category:
    """The category's normal images; none when the generator ignores them and no --data is given
    (raw SDAS needs only a model, so `synth gen --category bottle` works without a dataset)."""
    return load_category(plan.data, plan.category, plan.layout, plan.size, generator.uses_normal_image)


class _ReadKeys(dict):
    """A dict that records which keys were looked up: finds the generator options nobody reads."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read: set[Any] = set()

    def get(self, key: Any, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: Any) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: Any) -> bool:
        self.read.add(key)
        return super().__contains__(key)


# Settings given on the command line that only some generators read, and how the user names them.
TRACKED_SETTINGS = {"strength": "--s", "mix": "--mix"}
OPTION_FLAGS = {"target_contrast": "--contrast"}  # generator options whose flag has another name than the key


class _TrackedSettings(GeneratorSettings):
    """Generator settings that record which of ``TRACKED_SETTINGS`` a generator reads."""

    def __getattribute__(self, name: str) -> Any:
        if name in TRACKED_SETTINGS:
            object.__getattribute__(self, "read").add(name)
        return object.__getattribute__(self, name)


def checked_generator(name: str, settings: GeneratorSettings) -> Generator:
    """The generator ``name``; an option it does not use (``-o KEY=..``, an SDAS option, ``--s``,
    ``--mix``) is an error rather than a value recorded in the manifest as if it had been used."""
    tracked = _TrackedSettings(**{**vars(settings), "extra": _ReadKeys(settings.extra)})
    object.__setattr__(tracked, "read", set())
    generator = create_generator(name, tracked)
    unused = sorted(set(tracked.extra) - tracked.extra.read)
    if unused:
        named = [f"{key} ({OPTION_FLAGS[key]})" if key in OPTION_FLAGS else key for key in unused]
        raise SynthError(f"generator {name} has no option {', '.join(named)} (given with -o or an SDAS option)")
    ignored = [flag for field_name, flag in TRACKED_SETTINGS.items()
               if getattr(settings, field_name) and field_name not in tracked.read]
    if ignored:
        raise SynthError(f"generator {name} does not use {', '.join(ignored)}; leave it out")
    return generator


def _start(plan: GenerationPlan) -> None:
    """Check the settings and the output directory, then write the manifest and an incomplete card."""
    generator = checked_generator(plan.generator, plan.settings)
    manifest = plan.manifest(generator, load_source(plan, generator))
    prepare_directory(plan.out, manifest, plan.resume, plan.overwrite, IDENTITY)
    write_json_atomic(plan.out / MANIFEST, manifest)
    write_card(plan.out, manifest)


def _run_launched(plan: GenerationPlan, progress: bool) -> Path:
    """Every launched process writes its shards; process 0 prepares the directory and finishes it."""
    rank, size = distributed.world()
    with ExitStack() as held:
        error = None
        if rank == 0:
            try:
                held.enter_context(locked_output(plan))
                _start(plan)
            except SynthError as caught:
                error = str(caught)
        error = distributed.broadcast(error)
        if error is not None:
            raise SynthError(error)
        write_shards(plan, rank, size, progress)
        distributed.barrier()
        if rank == 0:
            finalize(plan.out)
    return plan.out


def finalize(out: Path) -> None:
    """Once every shard exists (each checked): mark the manifest complete and write the final card."""
    manifest = read_manifest(out)
    if manifest is None:
        raise SynthError(f"{out} has no {MANIFEST}")
    shards = verify_dataset(out, manifest)
    if len(shards) != manifest["num_shards"]:
        return
    manifest.update(complete=True, num_rows=sum(expected_rows(manifest)),
                    num_bytes=sum(p.stat().st_size for p in shards))
    write_json_atomic(out / MANIFEST, manifest)
    write_card(out, manifest)
