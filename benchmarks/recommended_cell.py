"""Wall time of the recommended cell for a textured surface with thin defects, end to end, beside PatchCore.

    python benchmarks/recommended_cell.py --work DIR [--threads 2] [--data ../shared/data/mtd --category magnetic_tile]

The cell (README Results, docs/detectors/patchcore-refine.md): 500 `mix` anomalies (thin strokes and
CutPaste-union patches and scars, equal weights) at 256 px, then `patchcore-refine` fitted on them and the normal images and
scored on the test set; PatchCore is fitted and scored in the same `detectors bench` run as the reference.
Prints each stage's wall time, the cell's total (generation + patchcore-refine's fit and scoring) and both
detectors' metrics. Run it on quiet cores: anything else running inflates every number.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]
MIX = "strokes=1,cutpaste-union=1"
COUNT = 500
SIZE = "256"


def timed(command: list[str]) -> float:
    """Run ``command`` from the repository root; its wall time in seconds (its failure ends the benchmark)."""
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True)
    return time.perf_counter() - start


def entry_point(name: str) -> str:
    """The `synth` / `detectors` command beside this Python."""
    found = Path(sys.executable).with_name(name)
    return str(found) if found.exists() else name


@click.command()
@click.option("--work", type=click.Path(path_type=Path), required=True, help="A new folder for the shards and results.")
@click.option("--data", default="../shared/data/mtd", show_default=True, help="Dataset root (relative to the repository).")
@click.option("--category", default="magnetic_tile", show_default=True)
@click.option("--textures", default="../shared/data/dtd", show_default=True, help="DTD root (strokes need none; kept for mix).")
@click.option("--threads", type=click.IntRange(1), default=2, show_default=True)
@click.option("--seed", default=0, show_default=True)
def main(work: Path, data: str, category: str, textures: str, threads: int, seed: int) -> None:
    work = work.resolve()
    if work.exists():
        raise click.UsageError(f"{work} exists; give a new --work folder")
    shards, results = work / "anomalies", work / "bench"
    generation = timed([entry_point("synth"), "gen", "--data", data, "--category", category, "-g", "mix", "--mix", MIX,
                        "--textures", textures, "-n", str(COUNT), "--size", SIZE, "--seed", str(seed),
                        "--num-processes", str(threads), "--out", str(shards)])
    bench = timed([entry_point("detectors"), "--threads", str(threads), "bench", "--data", data, "--category", category,
                   "--size", SIZE, "--detectors", "patchcore,patchcore-refine", "--anomalies", str(shards),
                   "--set", f"patchcore-refine.seed={seed}", "--overlays", "0", "--out", str(results)])
    found = {r["detector"]: r for r in json.loads((results / "results.json").read_text())["results"]}
    refine, patchcore = found["patchcore-refine"], found["patchcore"]
    cell = generation + refine["fit_seconds"] + refine["score_seconds"]
    print(f"\n{category}, {SIZE} px, {threads} thread(s), seed {seed}")
    print(f"generation of {COUNT} anomalies: {generation / 60:.1f} min; `detectors bench` (both detectors): "
          f"{bench / 60:.1f} min")
    print("| detector | fit (min) | score (s) | image AUROC | pixel AUROC | AUPRO@0.3 | pixel AP |")
    print("|---|---|---|---|---|---|---|")
    for name, r in (("patchcore", patchcore), ("patchcore-refine", refine)):
        m = r["metrics"]
        print(f"| {name} | {r['fit_seconds'] / 60:.1f} | {r['score_seconds']:.0f} | {m['image_auroc']:.3f} | "
              f"{m['pixel_auroc']:.3f} | {m['aupro_0.3']:.3f} | {m['pixel_ap']:.3f} |")
    print(f"recommended cell (generation + patchcore-refine fit and scoring): {cell / 60:.1f} min")


if __name__ == "__main__":
    main()
