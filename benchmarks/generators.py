"""Generator throughput on one core at 256x256, next to DRAEM's imgaug pipeline and to PNG encoding.

    python benchmarks/generators.py --data ../shared/data/mpdd --category metal_plate \\
        --textures ../shared/data/dtd --imgaug-python /tmp/imgaug-venv/bin/python

The process pins itself to one CPU and sets OpenCV/BLAS (and torch, when loaded) to one thread.
Rates are per CPU-second of the process (``time.process_time``, robust to other load on a shared
machine), best of five rounds. Prints Markdown tables:

* Perlin masks: ``synth.masks.perlin_mask`` against the former per-pixel gather form (same maths
  as DRAEM's ``rand_perlin_2d_np``) and the ``noise`` package;
* samples/s of every registered generator (textures decoded beforehand; the cost of a cold texture
  decode is printed apart);
* DRAEM's reference pipeline (imgaug augmenters as DRAEM configures them, gather-form Perlin,
  imgaug rotation, float blend) on the same images, when an interpreter with imgaug is given
  (imgaug 0.4 needs numpy < 2, so it lives in a throwaway venv, see docs/benchmarks/speed.md);
* shard writing (``synth.shards.ShardWriter``) against raw ``cv2.imencode`` PNG of the same rows.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402

DEFAULT_MIX = {"normal": 0.5, "draem": 0.25, "cutpaste-scar": 0.25}
REPEATS = 5


def best_rate(work: Callable[[int], None], count: int, repeats: int = REPEATS) -> float:
    """Items per CPU-second of ``work(i)`` over ``count`` items, best of ``repeats`` rounds.

    CPU time of this (single-threaded, pinned) process rather than wall time: the machine is shared,
    and the CPU time is what one core spends per item whatever else runs.
    """
    rates = []
    for _ in range(repeats):
        started = time.process_time()
        for i in range(count):
            work(i)
        rates.append(count / max(time.process_time() - started, 1e-9))
    return max(rates)


def former_perlin_noise(shape: tuple[int, int], res: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """synth's former Perlin noise (commit 9ffe1c5): per-pixel gathers of the four corner gradients
    in float64, the same computation as DRAEM's ``rand_perlin_2d_np``; the baseline here."""
    ry, rx = res
    cell_y, cell_x = -(-shape[0] // ry), -(-shape[1] // rx)
    angles = 2 * np.pi * rng.random((ry + 1, rx + 1))
    gradients = np.stack((np.cos(angles), np.sin(angles)), axis=-1)
    ys = (np.arange(ry * cell_y) / cell_y)[:, None]
    xs = (np.arange(rx * cell_x) / cell_x)[None, :]
    iy, ix = ys.astype(int), xs.astype(int)
    fy, fx = ys - iy, xs - ix

    def corner(dy: int, dx: int) -> np.ndarray:
        g = gradients[iy + dy, ix + dx]
        return g[..., 0] * (fy - dy) + g[..., 1] * (fx - dx)

    uy, ux = (6 * t**5 - 15 * t**4 + 10 * t**3 for t in (fy, fx))
    top = corner(0, 0) * (1 - ux) + corner(0, 1) * ux
    bottom = corner(1, 0) * (1 - ux) + corner(1, 1) * ux
    return (np.sqrt(2) * (top * (1 - uy) + bottom * uy))[: shape[0], : shape[1]]


def reference_worker(folder: Path, count: int) -> None:
    """DRAEM's augment_image, as configured in its data_loader.py, timed in an imgaug interpreter."""
    import imgaug.augmenters as iaa

    normals = np.load(folder / "normals.npy")
    textures = np.load(folder / "textures.npy")
    augmenters = [iaa.GammaContrast((0.5, 2.0), per_channel=True),
                  iaa.MultiplyAndAddToBrightness(mul=(0.8, 1.2), add=(-30, 30)),
                  iaa.pillike.EnhanceSharpness(), iaa.AddToHueAndSaturation((-50, 50), per_channel=True),
                  iaa.Solarize(0.5, threshold=(32, 128)), iaa.Posterize(), iaa.Invert(),
                  iaa.pillike.Autocontrast(), iaa.pillike.Equalize(), iaa.Affine(rotate=(-45, 45))]
    rotation = iaa.Sequential([iaa.Affine(rotate=(-90, 90))])
    rng = np.random.default_rng(0)

    def sample(i: int) -> None:
        image = normals[i % len(normals)].astype(np.float32) / 255
        chosen = rng.choice(len(augmenters), 3, replace=False)
        texture = iaa.Sequential([augmenters[k] for k in chosen])(image=textures[i % len(textures)])
        scales = (2 ** int(rng.integers(0, 6)), 2 ** int(rng.integers(0, 6)))
        noise = rotation(image=former_perlin_noise(image.shape[:2], scales, rng))
        mask = np.where(noise > 0.5, 1.0, 0.0)[..., None]
        beta = rng.random() * 0.8
        out = image * (1 - mask) + (1 - beta) * texture.astype(np.float32) * mask / 255 + beta * image * mask
        (mask * out + (1 - mask) * image).astype(np.float32)

    for i in range(10):
        sample(i)
    print(json.dumps({"samples_per_s": best_rate(sample, count)}))


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def perlin_rows(size: int, count: int) -> list[list[str]]:
    from synth.masks import perlin_mask
    from synth.masks.perlin import perlin_noise, perlin_noise_reference

    rng = np.random.default_rng(0)
    ours_mask = 1e3 / best_rate(lambda i: perlin_mask((size, size), rng), count)
    ours = 1e3 / best_rate(lambda i: perlin_noise((size, size), (8, 8), rng), count)
    former = 1e3 / best_rate(lambda i: former_perlin_noise((size, size), (8, 8), rng), count)
    package = 1e3 / best_rate(lambda i: perlin_noise_reference((size, size), (8, 8), i), 3, repeats=1)
    return [["synth perlin_mask (noise + rotation + threshold)", f"{ours_mask:.3f}"],
            ["synth perlin_noise", f"{ours:.3f}"],
            ["former gather form (= DRAEM rand_perlin_2d_np)", f"{former:.3f}"],
            ["`noise` package (pnoise2 per pixel)", f"{package:.1f}"]]


def generator_rows(args: argparse.Namespace, normals: list[np.ndarray]) -> tuple[list[list[str]], dict[str, float], dict]:
    """samples/s of every generator that can be built here; also returns a few samples of each."""
    import cv2

    from synth.data.textures import open_textures
    from synth.errors import SynthError
    from synth.generators import GeneratorSettings, available_generators, create_generator, per_sample_rng

    settings = GeneratorSettings(category=args.category, size=args.size, data=args.data, textures=args.textures,
                                 mix=DEFAULT_MIX)
    textures = open_textures(settings.textures, (), (), settings.size)
    started = time.process_time()
    for index in range(len(textures)):
        textures.image(index, settings.size)
    decode_ms = (time.process_time() - started) * 1e3 / len(textures)
    rows, rates, made = [], {}, {}
    for name in args.generators or available_generators():
        try:
            generator = create_generator(name, settings)
        except SynthError as error:
            rows.append([name, "skipped: " + str(error).split(";")[0]])
            continue
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)
        cv2.setNumThreads(1)
        rngs = [per_sample_rng(0, i) for i in range(args.n)]
        samples = [generator.generate(normals[i % len(normals)], per_sample_rng(0, i)) for i in range(10)]
        rates[name] = best_rate(lambda i: generator.generate(normals[i % len(normals)], rngs[i]), args.n)
        rows.append([name, f"{rates[name]:.0f}"])
        made[name] = (generator, samples)
    rows.append([f"(cold texture decode + resize, ms/texture, {textures.description})", f"{decode_ms:.2f}"])
    return rows, rates, made


def reference_rate(python: str, normals: list[np.ndarray], textures_root: Path | None, size: int,
                   count: int) -> float | str:
    """DRAEM's pipeline in the imgaug interpreter on the same normal images and textures."""
    from synth.data.textures import open_textures

    textures = open_textures(textures_root, (), (), size)
    with tempfile.TemporaryDirectory() as folder:
        np.save(Path(folder) / "normals.npy", np.stack(normals))
        picks = np.random.default_rng(0).choice(len(textures), min(64, len(textures)), replace=False)
        np.save(Path(folder) / "textures.npy", np.stack([textures.image(int(k), size) for k in picks]))
        done = subprocess.run([python, __file__, "--reference-worker", folder, "-n", str(count)],
                              capture_output=True, text=True)
    if done.returncode != 0:
        return "failed: " + (done.stderr.strip().splitlines() or ["?"])[-1]
    return json.loads(done.stdout.strip().splitlines()[-1])["samples_per_s"]


def shard_rows(samples: list, columns: dict[str, str], count: int) -> list[list[str]]:
    """Rows/s of ShardWriter.write against cv2 PNG encoding of the same images and masks."""
    import cv2

    from synth.shards import ShardWriter, dataset_features

    rows = [{"image": samples[i % len(samples)].image, "mask": samples[i % len(samples)].mask, "index": i,
             "seed": 0, "source": "x", "category": "c", "generator": "draem", **samples[i % len(samples)].params}
            for i in range(count)]

    def encode_all(_: int) -> None:
        for row in rows:
            cv2.imencode(".png", cv2.cvtColor(row["image"], cv2.COLOR_RGB2BGR))
            cv2.imencode(".png", row["mask"])

    with tempfile.TemporaryDirectory() as folder:
        writer = ShardWriter(Path(folder), dataset_features(columns), 1)
        encode = best_rate(encode_all, 1) * count
        write = best_rate(lambda _: writer.write(0, rows), 1) * count
    return [["cv2.imencode PNG (image + mask)", f"{encode:.0f}", "-"],
            ["synth.shards.ShardWriter.write", f"{write:.0f}", f"{(encode / write - 1) * 100:+.0f} %"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="dataset root (default: built-in photos)")
    parser.add_argument("--category", default="brick")
    parser.add_argument("--textures", type=Path, default=None, help="texture root (default: built-in)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("-n", type=int, default=200, help="samples per round")
    parser.add_argument("--generators", type=lambda text: text.split(","), default=None,
                        help="comma-separated generators to time, nothing else (default: every part, every generator)")
    parser.add_argument("--imgaug-python", default="/tmp/imgaug-venv/bin/python")
    parser.add_argument("--reference-worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    if args.reference_worker:
        return reference_worker(args.reference_worker, args.n)

    import cv2

    from synth.data import load_category

    cv2.setNumThreads(1)
    normals = load_category(args.data, args.category, size=args.size).train_images[:32]
    print(f"## {args.size}x{args.size}, one core, {args.data or 'built-in'} {args.category}, "
          f"textures {args.textures or 'built-in'}\n")
    if args.generators:
        print(table(["generator", "samples/s"], generator_rows(args, normals)[0]))
        return
    print(table(["Perlin", "ms"], perlin_rows(args.size, args.n)) + "\n")
    rows, rates, made = generator_rows(args, normals)
    print(table(["generator", "samples/s"], rows) + "\n")
    if Path(args.imgaug_python).exists():
        reference = reference_rate(args.imgaug_python, normals, args.textures, args.size, args.n)
        if isinstance(reference, float):
            ratio = [[name, f"{rates[name] / reference:.1f}x"] for name in ("draem", "prn-hea", "prn-hoa") if name in rates]
            print(table(["pipeline", "samples/s"], [["DRAEM reference (imgaug)", f"{reference:.0f}"]]) + "\n")
            print(table(["generator", "speed-up over DRAEM reference"], ratio) + "\n")
        else:
            print(f"DRAEM reference pipeline: {reference}\n")
    else:
        print(f"DRAEM reference pipeline: skipped (no imgaug interpreter at {args.imgaug_python})\n")
    generator, samples = made["draem"]
    print(table(["writing", "rows/s", "overhead over encoding"], shard_rows(samples, generator.columns, args.n)))

if __name__ == "__main__":
    main()
