"""A generation plan and the driver that turns it into Parquet shards.

Sample ``i`` is made from ``per_sample_rng(seed, i)`` alone, and shard ``k`` holds samples
``[k*shard_size, (k+1)*shard_size)``, so the dataset does not depend on batch size, resume points or
the number of processes: process ``p`` of ``P`` writes the shards ``k`` with ``k % P == p``.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import datasets
import pyarrow.parquet as pq
from tqdm.auto import tqdm

import synth
from synth import distributed
from synth.data import Category, load_category
from synth.data.layouts import license_note
from synth.errors import SynthError
from synth.generators import Generator, GeneratorSettings, create_generator, per_sample_rng
from synth.shards import (CARD, MANIFEST, ShardWriter, completed_shards, dataset_features, read_manifest,
                          write_card, write_json_atomic)

FORMAT = "synth-dataset/1"
# Manifest fields that must match for --resume to continue a run.
IDENTITY = ("format", "generator", "settings", "category", "data", "layout", "size", "num_samples",
            "seed", "shard_size")


@dataclass
class GenerationPlan:
    """What to generate, how many, from which seed, and where."""

    generator: str
    category: str
    out: Path
    num_samples: int
    data: Path | None = None
    layout: str | None = None
    size: int = 256
    seed: int = 0
    shard_size: int = 1000
    batch_size: int = 1
    settings: GeneratorSettings = field(default_factory=GeneratorSettings)
    resume: bool = False
    overwrite: bool = False
    command: str = ""

    def __post_init__(self) -> None:
        if self.num_samples <= 0:
            raise SynthError(f"-n must be positive, got {self.num_samples}")
        if self.shard_size <= 0:
            raise SynthError(f"--shard-size must be positive, got {self.shard_size}")
        if self.batch_size <= 0:
            raise SynthError(f"--batch-size must be positive, got {self.batch_size}")
        if self.resume and self.overwrite:
            raise SynthError("--resume and --overwrite exclude each other")
        self.out = Path(self.out)
        self.settings.category = self.category
        self.settings.size = self.size

    @property
    def num_shards(self) -> int:
        return -(-self.num_samples // self.shard_size)

    def shard_indices(self, shard: int) -> range:
        return range(shard * self.shard_size, min((shard + 1) * self.shard_size, self.num_samples))

    def manifest(self, generator: Generator, category: Category) -> dict[str, Any]:
        settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self.settings).items()}
        return {
            "format": FORMAT, "generator": self.generator, "generator_params": generator.describe(),
            "settings": settings, "category": self.category,
            "data": str(self.data) if self.data else None, "layout": category.layout, "size": self.size,
            "num_samples": self.num_samples, "seed": self.seed, "shard_size": self.shard_size,
            "num_shards": self.num_shards, "command": self.command, "version": synth.__version__,
            "num_normal_images": len(category), "complete": False,
            "source_license": license_note(self.data, self.category),
        }


def default_output_dir(category: str, generator: str) -> Path:
    """The output directory used when none is given: named after category and generator."""
    return Path(f"{category}-{generator}")


def _prepare_output(plan: GenerationPlan, manifest: dict[str, Any]) -> None:
    out = plan.out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SynthError(f"cannot create output directory {out}: {error.strerror}") from None
    existing = [p for p in out.iterdir() if not p.name.startswith(".")]
    if plan.overwrite:
        for name in (MANIFEST, CARD):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / "data", ignore_errors=True)
    elif plan.resume:
        previous = read_manifest(out)
        if previous is None:
            raise SynthError(f"nothing to resume in {out}: no readable {MANIFEST}")
        current = json.loads(json.dumps(manifest, default=str))  # compare as stored (tuples -> lists)
        changed = [key for key in IDENTITY if previous.get(key) != current.get(key)]
        if changed:
            raise SynthError(f"cannot resume {out}: it was made with different {', '.join(changed)}")
    elif existing:
        raise SynthError(f"output directory {out} is not empty; use --resume to continue or --overwrite to replace it")
    probe = out / ".write-test"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise SynthError(f"cannot write to output directory {out}: {error.strerror}") from None


def _batches(indices: range, size: int) -> Iterator[range]:
    for start in range(indices.start, indices.stop, size):
        yield range(start, min(start + size, indices.stop))


def generate_shard(plan: GenerationPlan, shard: int, generator: Generator, category: Category) -> list[dict[str, Any]]:
    """The rows of one shard."""
    rows: list[dict[str, Any]] = []
    for batch in _batches(plan.shard_indices(shard), plan.batch_size):
        rngs = [per_sample_rng(plan.seed, i) for i in batch]
        picks = [category.pick(rng) for rng in rngs]
        samples = generator.generate_batch([category.train_images[k] for k in picks], rngs)
        for index, pick, sample in zip(batch, picks, samples):
            rows.append({"image": sample.image, "mask": sample.mask, "index": index, "seed": plan.seed,
                         "source": category.train_ids[pick] if generator.uses_normal_image else None, "category": plan.category,
                         "generator": plan.generator, **sample.params})
    return rows


def write_shards(plan: GenerationPlan, process_index: int = 0, num_processes: int = 1,
                 progress: bool = True) -> None:
    """Write the missing shards ``k`` of ``plan`` with ``k % num_processes == process_index``."""
    category = load_category(plan.data, plan.category, plan.layout, plan.size)
    generator = create_generator(plan.generator, plan.settings)
    writer = ShardWriter(plan.out, dataset_features(generator.columns), plan.num_shards)
    mine = [k for k in range(plan.num_shards) if k % num_processes == process_index]
    todo = [k for k in mine if not writer.done(k)]
    total = sum(len(plan.shard_indices(k)) for k in mine)
    done = total - sum(len(plan.shard_indices(k)) for k in todo)
    with tqdm(total=total, initial=done, unit="img", disable=not progress, position=process_index,
              desc=f"{plan.generator} {plan.category}" + (f" [{process_index}]" if num_processes > 1 else "")) as bar:
        for shard in todo:
            rows = generate_shard(plan, shard, generator, category)
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
    _start(plan)
    if num_processes == 1:
        write_shards(plan, 0, 1, progress)
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(num_processes, mp_context=context) as pool:
            futures = [pool.submit(write_shards, plan, p, num_processes, progress) for p in range(num_processes)]
            for future in futures:
                future.result()
    finalize(plan.out)
    return plan.out


def _start(plan: GenerationPlan) -> None:
    category = load_category(plan.data, plan.category, plan.layout, plan.size)
    manifest = plan.manifest(create_generator(plan.generator, plan.settings), category)
    _prepare_output(plan, manifest)
    write_json_atomic(plan.out / MANIFEST, manifest)


def _run_launched(plan: GenerationPlan, progress: bool) -> Path:
    """Every launched process writes its shards; process 0 prepares the directory and finishes it."""
    rank, size = distributed.world()
    error = None
    if rank == 0:
        try:
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
    """Once every shard exists: mark the manifest complete and write the dataset card."""
    manifest = read_manifest(out)
    if manifest is None:
        raise SynthError(f"{out} has no {MANIFEST}")
    shards = completed_shards(out)
    if len(shards) != manifest["num_shards"]:
        return
    features = datasets.Features.from_arrow_schema(pq.read_schema(shards[0]))
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in shards)
    manifest.update(complete=True, num_rows=rows)
    write_json_atomic(out / MANIFEST, manifest)
    write_card(out, manifest, features, rows, sum(p.stat().st_size for p in shards))
