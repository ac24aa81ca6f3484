"""Generator x detector matrix: shards from each generator, `detectors bench` on each, a table and plots.

For every dataset and generator this makes N anomalies at the detectors' image size with `synth gen`,
then runs `detectors bench --detectors realnet,simplenet,prn` on them; PatchCore (normal images only)
runs once per dataset as the reference line. Generators that cannot run (SDAS without a trained
diffusion model) are reported as missing. Shards and bench results are kept under --work, so an
interrupted run resumes. Writes the "## Generator x detector matrix" section of docs/benchmarks.md
and docs/img/matrix_<category>.png (drawn with OpenCV: matplotlib is not a dependency).

    python benchmarks/matrix.py --work /tmp/synth-matrix --threads 2

Training lengths are CPU-scaled to fit the whole matrix in well under an hour on 2 cores: the
detectors train for a fixed number of optimiser steps (``STEPS``), converted to epochs per category.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click
import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
DATASETS = {"metal_plate": DATA / "mpdd", "bottle": DATA / "mvtec"}
TEXTURES = DATA / "dtd"
GENERATORS = {"cutpaste-union": [], "draem": ["--textures", str(TEXTURES)], "prn-hea": ["--textures", str(TEXTURES)],
              "prn-hoa": [], "sdas": ["--blend"]}
DETECTORS = ("realnet", "simplenet", "prn")
STEPS = {"realnet": 40, "prn": 20}  # optimiser steps per fit (batch 16: 8 normal + 8 anomalous images)
NORMALS_PER_STEP = 8
VALIDATIONS = 3  # synthetic validations per fit (checkpoint selection)
SIMPLENET = {"meta_epochs": 1}  # 1 x 4 epochs (official 40 x 4)
SECTION = "## Generator x detector matrix"
# Run as modules from the repository root: this works whether or not the console scripts are installed.
SYNTH = ("python", "-m", "synth")
DETECTORS_CLI = ("python", "-m", "detectors.cli")
METRICS = (("image_auroc", "image AUROC"), ("pixel_auroc", "pixel AUROC"), ("aupro_0.3", "AUPRO@0.3"),
           ("pixel_ap", "pixel AP"))


@dataclass
class Runner:
    """Runs commands from the repository root, logging their output; or only says what would run."""

    log: Path
    collect_only: bool = False

    def __call__(self, command: list[str]) -> str | None:
        """None on success, else the last error line."""
        if self.collect_only:
            return "no results yet (collected with --collect-only)"
        click.echo("$ " + " ".join(command))
        result = subprocess.run([sys.executable, *command[1:]] if command[0] == "python" else command,
                                capture_output=True, text=True, cwd=REPO)
        with self.log.open("a") as handle:
            handle.write("$ " + " ".join(command) + "\n" + result.stdout + result.stderr + "\n")
        if result.returncode == 0:
            return None
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else f"exit status {result.returncode}"


def generate(run: Runner, work: Path, category: str, generator: str, size: int, count: int,
             model: str | None) -> tuple[Path, str | None]:
    out = work / "shards" / f"{category}-{generator}"
    if shards_complete(out):
        return out, None
    command = [*SYNTH, "gen", "--data", str(DATASETS[category]), "--category", category, "--size", str(size),
               "-g", generator, *GENERATORS[generator], "-n", str(count), "--seed", "0", "--out", str(out)]
    if generator == "sdas" and model:
        command += ["--model", model]
    resumed = out.exists()
    if resumed:
        command.append("--resume")
    failed = out.parent / f"{out.name}.error"  # why the last attempt failed, for --collect-only
    started = time.perf_counter()
    error = run(command)
    if run.collect_only:
        return out, failed.read_text() if failed.exists() else error
    if error:
        failed.write_text(error)
    else:
        failed.unlink(missing_ok=True)
        if not resumed:  # a resumed run's time would be only its last part
            generation_seconds(out).write_text(f"{time.perf_counter() - started:.1f}\n")
    return out, error


def shards_complete(shards: Path) -> bool:
    """Whether ``synth gen`` finished writing ``shards`` (an interrupted run leaves ``complete: false``)."""
    manifest = shards / "manifest.json"
    return manifest.exists() and bool(json.loads(manifest.read_text()).get("complete"))


def generation_seconds(shards: Path) -> Path:
    """Where the wall time of ``synth gen`` for ``shards`` is kept."""
    return shards.parent / f"{shards.name}.seconds"


def read_generation_seconds(shards: Path) -> float | None:
    path = generation_seconds(shards)
    return float(path.read_text()) if path.exists() else None


def detector_settings(detector: str, normal_images: int, steps: dict[str, int] = STEPS) -> list[str]:
    """--set options that give ``detector`` its step budget (``steps``) on a category with ``normal_images``."""
    if detector == "simplenet":
        return [f"simplenet.{key}={value}" for key, value in SIMPLENET.items()]
    epochs = max(1, round(steps[detector] / math.ceil(normal_images / NORMALS_PER_STEP)))
    return [f"{detector}.epochs={epochs}", f"{detector}.val_every={max(1, epochs // VALIDATIONS)}"]


def bench(run: Runner, work: Path, category: str, name: str, detectors: list[str], anomalies: Path | None,
          size: int, threads: int, normal_images: int, steps: dict[str, int] = STEPS
          ) -> tuple[Path, str | None, list[str]]:
    out = work / "bench" / f"{category}-{name}"
    command = [*DETECTORS_CLI, "--threads", str(threads), "bench", "--detectors", ",".join(detectors),
               "--data", str(DATASETS[category]), "--category", category, "--size", str(size), "--overlays", "0",
               "--out", str(out)]
    if anomalies:
        command += ["--anomalies", str(anomalies)]
    for detector in detectors:
        for setting in detector_settings(detector, normal_images, steps) if detector != "patchcore" else []:
            command += ["--set", setting]
    if (out / "results.json").exists():
        return out, None, command
    return out, run(command), command


def count_normal(category: str) -> int:
    folder = DATASETS[category] / category / "train" / "good"
    return sum(1 for path in folder.iterdir() if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))


def read_results(out: Path) -> dict[str, dict]:
    """Results by detector, each with the run's torch thread count added."""
    document = json.loads((out / "results.json").read_text())
    return {result["detector"]: {**result, "threads": document["torch_threads"]} for result in document["results"]}


def cell(result: dict | None) -> str:
    if result is None:
        return "–"
    return f"{result['metrics']['image_auroc']:.3f} / {result['metrics']['pixel_auroc']:.3f}"


def markdown(results: dict, missing: dict, generation: dict, commands: list[str], size: int, count: int) -> str:
    """The docs section: per-category pivot tables (image / pixel AUROC), the full table, notes."""
    generators = list(GENERATORS)
    done = [result for by_detector in results.values() for result in by_detector.values()]
    seconds = sum(result["fit_seconds"] + result["score_seconds"] for result in done)
    threads = "/".join(str(n) for n in sorted({result["threads"] for result in done})) or "?"
    lines = [SECTION, "",
             f"Real test sets; detectors trained on {count} synthetic anomalies per generator at {size} x {size} px "
             f"with {threads} torch thread(s) per run and CPU-scaled training ({STEPS['realnet']} RealNet steps, "
             f"{STEPS['prn']} PRN steps, rounded to whole epochs; SimpleNet {SIMPLENET['meta_epochs']} x 4 epochs; "
             "checkpoints chosen on held-out synthetic rows). Fit + scoring wall time of the results below: "
             f"{seconds / 60:.0f} min on a shared 2-core machine. Cells: image AUROC / pixel AUROC. Produced by "
             "`python benchmarks/matrix.py --work DIR --threads N` (one driver per category may run side by side "
             "with `--categories`; `--collect-only` rewrites this section from the results), which runs:", "", "```"]
    lines += commands + ["```", ""]
    for category in DATASETS:
        lines += [f"### {category}", "", "| detector | " + " | ".join(generators) + " |",
                  "|---|" + "---|" * len(generators)]
        for detector in DETECTORS:
            row = [cell(results.get((category, generator), {}).get(detector)) for generator in generators]
            lines.append(f"| {detector} | " + " | ".join(row) + " |")
        reference = results.get((category, "patchcore"), {}).get("patchcore")
        lines += [f"| patchcore (no anomalies) | " + " | ".join([cell(reference)] * len(generators)) + " |", ""]
        absent = [f"`{g}` ({missing[(category, g)]})" for g in generators if (category, g) in missing]
        if absent:
            lines += ["Missing: " + "; ".join(absent) + ".", ""]
        lines += [f"![matrix {category}](img/matrix_{category}.png)", ""]
    lines += ["All metrics:", "", "| category | generator | detector | " + " | ".join(t for _, t in METRICS)
              + " | fit (s) | score (s) |", "|---|---|---|" + "---|" * (len(METRICS) + 2)]
    for (category, generator), by_detector in results.items():
        for detector, result in by_detector.items():
            values = " | ".join(f"{result['metrics'][key]:.4f}" for key, _ in METRICS)
            lines.append(f"| {category} | {generator} | {detector} | {values} | {result['fit_seconds']:.0f} | "
                         f"{result['score_seconds']:.0f} |")
    lines += ["", f"Wall time of `synth gen` for the {count} anomalies of each generator (s; – where the shards "
              "were resumed or missing):", "", "| category | " + " | ".join(generators) + " |",
              "|---|" + "---|" * len(generators)]
    for category in DATASETS:
        times = [generation.get((category, generator)) for generator in generators]
        lines.append(f"| {category} | " + " | ".join("–" if t is None else f"{t:.0f}" for t in times) + " |")
    lines += ["", sdas_versus_dtd(results, missing), ""]
    return "\n".join(lines)


def sdas_versus_dtd(results: dict, missing: dict) -> str:
    """RealNet's claim (SDAS anomalies beat DTD-texture anomalies), checked on this data."""
    verdicts = []
    for category in DATASETS:
        sdas = results.get((category, "sdas"), {}).get("realnet")
        dtd = results.get((category, "draem"), {}).get("realnet")
        if sdas is None or dtd is None:
            reason = missing.get((category, "sdas"), "no result")
            verdicts.append(f"{category}: not determined (sdas: {reason})")
            continue
        better = [title for key, title in METRICS if sdas["metrics"][key] > dtd["metrics"][key]]
        verdicts.append(f"{category}: SDAS beats DTD on {len(better)} of {len(METRICS)} metrics"
                        + (f" ({', '.join(better)})" if better else ""))
    return ("**SDAS vs. DTD anomalies for RealNet** (the paper's claim; DTD anomalies = the `draem` generator, "
            "texture opacity 1 − β in (0.2, 1], RealNet's δ ~ U[0.2, 1]): " + "; ".join(verdicts) + ".")


def plot(path: Path, category: str, results: dict) -> None:
    """A heat grid (rows: detectors, columns: generators) coloured by image AUROC, labelled img / px."""
    rows = [*DETECTORS, "patchcore"]
    columns = list(GENERATORS)
    cell_w, cell_h, left, top = 150, 44, 190, 56
    canvas = np.full((top + cell_h * len(rows) + 30, left + cell_w * len(columns), 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(canvas, f"{category}: image AUROC / pixel AUROC", (10, 22), font, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    for j, generator in enumerate(columns):
        cv2.putText(canvas, generator, (left + j * cell_w + 8, top - 10), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    for i, detector in enumerate(rows):
        y = top + i * cell_h
        cv2.putText(canvas, detector, (10, y + 28), font, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        for j, generator in enumerate(columns):
            key = (category, "patchcore") if detector == "patchcore" else (category, generator)
            result = results.get(key, {}).get(detector)
            x = left + j * cell_w
            if result is None:
                colour, text, ink = (235, 235, 235), "missing", (120, 120, 120)
            else:
                level = np.clip((result["metrics"]["image_auroc"] - 0.5) / 0.5, 0, 1)
                bgr = cv2.applyColorMap(np.array([[int(level * 255)]], np.uint8), cv2.COLORMAP_VIRIDIS)[0, 0]
                colour, text = tuple(int(c) for c in bgr), cell(result).replace(" ", "")
                ink = (0, 0, 0) if level > 0.6 else (255, 255, 255)
            cv2.rectangle(canvas, (x + 2, y + 2), (x + cell_w - 2, y + cell_h - 2), colour, -1)
            cv2.putText(canvas, text, (x + 10, y + 28), font, 0.5, ink, 1, cv2.LINE_AA)
    cv2.putText(canvas, "colour: image AUROC from 0.5 (dark) to 1.0 (yellow)", (10, canvas.shape[0] - 10), font, 0.45,
                (60, 60, 60), 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), canvas)


def write_section(path: Path, section: str) -> None:
    """Replace (or append) the section of docs/benchmarks.md headed by ``section``'s first line."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(section.splitlines()[0]) + r".*?(?=\n## |\Z)", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip() + "\n", text)
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text.rstrip() + "\n")


@click.command()
@click.option("--work", type=click.Path(path_type=Path), required=True, help="Shards and bench results (resumable).")
@click.option("--size", default=128, show_default=True, help="Image side for generation and detectors.")
@click.option("-n", "count", default=500, show_default=True, help="Anomalies per generator.")
@click.option("--threads", default=2, show_default=True, help="torch threads of each `detectors bench`.")
@click.option("--sdas-model", "sdas_models", multiple=True, metavar="CATEGORY=DIR",
              help="SDAS diffusion model of a category (default: synth's discovery, ./models/CATEGORY).")
@click.option("--docs/--no-docs", default=True, help="Write docs/benchmarks.md and docs/img/matrix_*.png.")
@click.option("--collect-only", is_flag=True, help="Only read the results already under --work (no runs).")
@click.option("--categories", default=",".join(DATASETS), show_default=True,
              help="Comma-separated categories to run (one driver per category can share --work).")
def main(work: Path, size: int, count: int, threads: int, sdas_models: tuple[str, ...], docs: bool,
         collect_only: bool, categories: str) -> None:
    """Run the matrix and write the table and plots."""
    models = dict(pair.split("=", 1) for pair in sdas_models if "=" in pair)
    run = Runner(work / "log.txt", collect_only)
    work.mkdir(parents=True, exist_ok=True)
    results: dict[tuple[str, str], dict] = {}
    missing: dict[tuple[str, str], str] = {}
    generation: dict[tuple[str, str], float] = {}
    commands: list[str] = []
    chosen = [name.strip() for name in categories.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(DATASETS))
    if unknown:
        raise click.UsageError(f"unknown category {unknown[0]!r}; choose from {', '.join(DATASETS)}")
    for category in chosen:
        normal_images = count_normal(category)
        out, error, command = bench(run, work, category, "patchcore", ["patchcore"], None, size, threads, normal_images)
        commands.append(" ".join(command))
        if error is None:
            results[(category, "patchcore")] = read_results(out)
        for generator in GENERATORS:
            shards, error = generate(run, work, category, generator, size, count, models.get(category))
            if error is None and (seconds := read_generation_seconds(shards)) is not None:
                generation[(category, generator)] = seconds
            if error is not None:
                missing[(category, generator)] = error
                click.echo(f"missing {category}/{generator}: {error}")
                continue
            out, error, command = bench(run, work, category, generator, list(DETECTORS), shards, size, threads,
                                        normal_images)
            commands.append(" ".join(command))
            if error is not None:
                missing[(category, generator)] = error
                click.echo(f"bench failed {category}/{generator}: {error}")
                continue
            results[(category, generator)] = read_results(out)
    section = markdown(results, missing, generation, commands, size, count)
    click.echo(section)
    if docs:
        for category in DATASETS:
            plot(REPO / "docs" / "img" / f"matrix_{category}.png", category, results)
        write_section(REPO / "docs" / "benchmarks.md", section)


if __name__ == "__main__":
    sys.exit(main())
