"""benchmarks/matrix.py (the published tables on top of the engine of `detectors matrix`) with a fake runner:
every cell once, resuming without refitting, the record, aggregation, portable text."""

from __future__ import annotations

import json
import math
import os
import shutil
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

import detectors.matrix.runner as runner_module
from detectors.matrix.engine import Cell, Shards
from detectors.matrix.plots import pyplot
from detectors.matrix.results import collect
from detectors.matrix.runner import estimate, time_left
from detectors.matrix.stats import interval, mean_std, steps, values_of
from tests.conftest import load_benchmark

REPO = Path(__file__).resolve().parents[1]
CATEGORIES = ("metal_plate", "bottle")
GENERATORS = ("draem", "sdas", "mix-uniform")
DETECTORS = ("realnet", "prn")
SEEDS = 3
LABELS = [0] * 8 + [1] * 8


@pytest.fixture(scope="module")
def matrix():
    return load_benchmark("matrix", "matrix_benchmark")


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def written_to(command: list[str], work: Path) -> str:
    """The command's --out relative to the work folder."""
    return (REPO / option(command, "--out")).resolve().relative_to(work.resolve()).as_posix()


def fake_result(command: list[str]) -> dict:
    """A results.json whose numbers depend on the seed; RealNet on SDAS ranks the test images perfectly."""
    detector = option(command, "--detectors")
    seed = int(next(s for s in command if s.startswith(f"{detector}.seed=")).partition("=")[2])
    perfect = detector == "realnet" and "/sdas/" in option(command, "--out")
    rng = np.random.default_rng(seed)
    scores = np.array(LABELS) + rng.uniform(0, 0.5, len(LABELS)) if perfect else rng.uniform(0, 1, len(LABELS))
    result = {"detector": detector, "fit_seconds": 10.0 + seed, "score_seconds": 2.0,
              "metrics": {"image_auroc": 0.6 + 0.1 * seed, "pixel_auroc": 0.9, "aupro_0.3": 0.5, "pixel_ap": 0.4},
              "intervals": {"image_auroc": [0.5 + 0.1 * seed, 0.7 + 0.1 * seed], "pixel_auroc": [0.85, 0.95]},
              "image_scores": scores.tolist(),
              "training": None if detector == "patchcore" else {"steps": 100 + seed, "max_steps": 102,
                                                                 "stopped_early": seed != 2}}
    return {"torch_threads": 1, "labels": LABELS, "results": [result]}


class FakeRunner:
    """Records commands and writes what `synth gen` (a complete manifest) or `detectors bench` would;
    commands whose --out contains ``fail`` fail with a message that names their absolute path."""

    def __init__(self, fail: str | None = None) -> None:
        self.commands: list[list[str]] = []
        self.fail = fail

    def __call__(self, command: list[str]) -> str | None:
        self.commands.append(command)
        out = REPO / option(command, "--out")
        if self.fail and self.fail in out.as_posix():
            return f"no SDAS model in {REPO / 'models'} for {out.resolve()}"
        out.mkdir(parents=True, exist_ok=True)
        if "gen" in command:
            (out / "manifest.json").write_text(json.dumps({"complete": True}))
        else:
            (out / "results.json").write_text(json.dumps(fake_result(command)))
        return None

    def of(self, kind: str) -> list[list[str]]:
        return [command for command in self.commands if kind in command]


@pytest.fixture
def run(matrix, tmp_path: Path, monkeypatch, capsys):
    """Runs the matrix's command line on a work folder under tmp_path with a FakeRunner; returns (runner, output)."""
    monkeypatch.setattr(matrix, "count_normal", lambda category: 40)
    monkeypatch.setattr(matrix, "DOCS_PAGE", tmp_path / "docs" / "benchmarks.md")
    monkeypatch.setattr(matrix, "IMAGES", tmp_path / "docs" / "img")

    def invoke(*extra: str, fail: str | None = None, status: int = 0) -> tuple[FakeRunner, str]:
        runner = FakeRunner(fail)
        monkeypatch.setattr(runner_module, "Runner", lambda log, root: runner)
        arguments = ["--work", str(tmp_path / "work"), "--record", str(tmp_path / "record"), "--categories", ",".join(CATEGORIES), "--generators",
                     ",".join(GENERATORS), "--detectors", ",".join(DETECTORS), "--seeds", str(SEEDS), *extra]
        with pytest.raises(SystemExit) as exit_:
            matrix.main(arguments)
        captured = capsys.readouterr()
        assert exit_.value.code == status, captured.err
        return runner, captured.out if status == 0 else captured.err

    return invoke


def test_first_run_issues_every_command_once(run, matrix, tmp_path: Path) -> None:
    runner, _ = run()
    gens, benches = runner.of("gen"), runner.of("bench")
    assert len(gens) == len(CATEGORIES) * len(GENERATORS) * SEEDS
    assert len(benches) == len(CATEGORIES) * SEEDS * (1 + len(GENERATORS) * len(DETECTORS))
    assert max(Counter(tuple(c) for c in runner.commands).values()) == 1
    outs = [option(command, "--out") for command in benches]
    assert len(set(outs)) == len(outs)
    assert "bench/bottle/draem/prn/seed2" in {written_to(command, tmp_path / "work") for command in benches}
    made = [option(command, "--out") for command in runner.commands]
    for command in benches:  # each generator's shards are made before a detector trains on them
        if "--anomalies" in command:
            assert made.index(option(command, "--anomalies")) < made.index(option(command, "--out"))
        detector = option(command, "--detectors")
        assert f"{detector}.seed={option(command, '--out')[-1]}" in command
    realnet = next(c for c in benches if option(c, "--detectors") == "realnet" and "metal_plate" in c)
    epochs = math.ceil(matrix.BUDGETS["realnet"]["max_steps"] / 5)  # 40 normal images, 8 per step
    every = round(matrix.BUDGETS["realnet"]["val_every"] / 5)  # a validation every ~50 steps = 10 epochs
    assert {f"realnet.epochs={epochs}", f"realnet.val_every={every}", "realnet.patience=4"} <= set(realnet)
    cell = tmp_path / "work" / "bench" / "bottle" / "draem" / "prn"
    assert float((cell / "seed0.seconds").read_text()) >= 0  # wall times kept for the next run's estimate


def test_resumed_run_refits_only_missing_cells(run, tmp_path: Path) -> None:
    run()
    again, _ = run()
    assert again.commands == []
    bench, record = tmp_path / "work" / "bench", tmp_path / "record"
    shutil.rmtree(bench / "bottle" / "draem" / "realnet" / "seed1")  # never started
    (bench / "metal_plate" / "sdas" / "prn" / "seed0" / "results.json").unlink()  # interrupted
    shards = tmp_path / "work" / "shards" / "bottle" / "mix-uniform" / "seed2"
    (shards / "manifest.json").write_text(json.dumps({"complete": False}))
    shutil.rmtree(bench / "bottle" / "mix-uniform" / "prn" / "seed2")
    for cell in ("bottle/draem/realnet/seed1", "metal_plate/sdas/prn/seed0", "bottle/mix-uniform/prn/seed2"):
        (record / f"{cell}.json").unlink()  # cells that never finished were never kept
    resumed, _ = run()
    outs = {written_to(command, tmp_path / "work"): command for command in resumed.commands}
    assert set(outs) == {"bench/bottle/draem/realnet/seed1", "bench/metal_plate/sdas/prn/seed0",
                         "shards/bottle/mix-uniform/seed2", "bench/bottle/mix-uniform/prn/seed2"}
    assert "--overwrite" in outs["bench/metal_plate/sdas/prn/seed0"]
    assert "--overwrite" not in outs["bench/bottle/draem/realnet/seed1"]
    assert "--resume" in outs["shards/bottle/mix-uniform/seed2"]


def test_record_outlives_the_work_folder(run, tmp_path: Path) -> None:
    _, section = run()
    kept = [path for path in (tmp_path / "record").rglob("seed*.json") if path.parent.name != "gen"]
    assert len(kept) == len(CATEGORIES) * SEEDS * (1 + len(GENERATORS) * len(DETECTORS))
    text = "".join(path.read_text() for path in kept)
    assert str(tmp_path) not in text and str(REPO) not in text
    cell = json.loads((tmp_path / "record" / "bottle" / "draem" / "prn" / "seed2.json").read_text())
    assert cell["metrics"]["image_auroc"] == pytest.approx(0.8) and cell["labels"] == LABELS
    assert cell["wall_seconds"] >= 0 and (tmp_path / "record" / "bottle" / "normal" / "patchcore").is_dir()
    shutil.rmtree(tmp_path / "work")  # the machine that ran it is gone
    again, rebuilt = run()
    assert again.commands == [] and rebuilt == section
    (tmp_path / "record" / "metal_plate" / "sdas" / "prn" / "seed1.json").unlink()
    resumed, _ = run()
    assert [written_to(c, tmp_path / "work") for c in resumed.commands] == [
        "shards/metal_plate/sdas/seed1", "bench/metal_plate/sdas/prn/seed1"]


def test_results_made_with_other_settings_are_refused(run, tmp_path: Path) -> None:
    run()
    cell = tmp_path / "work" / "bench" / "bottle" / "draem" / "realnet" / "seed1" / "results.json"
    document = json.loads(cell.read_text())
    document["results"][0]["config"] = {"seed": 1, "lr": 0.001, "size": 128}  # what this matrix asks
    cell.write_text(json.dumps(document))
    assert run("--collect-only")[1]
    document["results"][0]["config"]["lr"] = 0.002
    cell.write_text(json.dumps(document))
    runner, output = run(status=2)
    assert runner.commands == [] and len(output.strip().splitlines()) == 1
    assert output.startswith("error: ") and output.strip().endswith(
        "work holds results made with other settings (bottle/draem/realnet/seed1: lr=0.002 (this run asks 0.001)); "
        "use another folder or the settings they were made with")
    run("--set", "realnet.lr=2e-3", "--collect-only")  # the setting it was made with: accepted
    shards = tmp_path / "work" / "shards" / "metal_plate" / "sdas" / "seed0" / "manifest.json"
    shards.write_text(json.dumps({"complete": True, "size": 256, "num_samples": 500}))
    output = run("--set", "realnet.lr=2e-3", "--collect-only", status=2)[1]
    assert "(metal_plate/sdas/seed0 gen: size=256 (this run asks 128));" in output


def test_aggregation_over_seeds(run, matrix, tmp_path: Path) -> None:
    run()
    _, section = run("--collect-only")
    groups, missing = collect(matrix.published(tmp_path / "work", seeds=SEEDS, categories=CATEGORIES,
                                               generators=GENERATORS, detectors=DETECTORS))
    assert not missing
    results = groups[("bottle", "draem", "prn")]
    assert mean_std(values_of(results, "image_auroc")) == pytest.approx((0.7, 0.1))
    assert interval(results, "image_auroc") == "[0.600, 0.800]"
    assert steps(results) == "100/101/102 (cap: 1 of 3)"
    assert "| bottle | draem | prn | 3 | 0.700 ± 0.100 | [0.600, 0.800] | 0.900 ± 0.000 |" in section
    assert "| bottle | normal only | patchcore | 3 | 0.700 ± 0.100 |" in section
    assert "- bottle, the paper's claim (RealNet trained on SDAS vs. on DTD anomalies): SDAS beats DTD" in section
    assert "![matrix bottle](img/matrix_bottle.png)" in section
    if pyplot() is not None:
        for category in CATEGORIES:
            assert cv2.imread(str(tmp_path / "docs" / "img" / f"matrix_{category}.png")) is not None


def test_the_note_under_the_heading_stays(matrix, tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# B\n\n## Generator x detector matrix\n\n> **Record.** kept.\n\nold table\n\n## Next\n\nrest\n")
    matrix.write_section(page, "## Generator x detector matrix\n\nnew table\n")
    assert page.read_text() == ("# B\n\n## Generator x detector matrix\n\n> **Record.** kept.\n\nnew table\n\n"
                                "## Next\n\nrest\n")


def test_time_left_from_similar_cells() -> None:
    done = {Cell("bottle", "draem", "prn", 0): 100.0, Cell("bottle", "sdas", "prn", 0): 200.0}
    assert estimate(Cell("bottle", "draem", "prn", 1), done) == 100.0
    assert estimate(Cell("bottle", "mix-uniform", "prn", 1), done) == 150.0
    assert time_left([Cell("bottle", "draem", "prn", 1), Shards("bottle", "draem", 1)], done) == "1m40s+?"


def test_commands_and_docs_name_no_local_path(run, tmp_path: Path) -> None:
    runner, section = run(fail="metal_plate/sdas/")
    written = (tmp_path / "docs" / "benchmarks.md").read_text()
    assert section.strip() in written
    assert not [command for command in runner.commands if str(REPO) in " ".join(command)]
    assert str(REPO) not in written and str(tmp_path) not in written  # the work folder is DIR in the docs
    assert not [part for command in runner.commands for part in command if part.startswith(os.sep)]
    assert "../shared/data/mvtec" in section and "--out DIR/bench/bottle/draem/realnet/seed0 " in section
    assert "sdas/realnet (no SDAS model in ./models for DIR/shards/metal_plate/sdas/seed0)" in section
    assert "metal_plate, the paper's claim (RealNet trained on SDAS vs. on DTD anomalies): not determined" in section


def test_a_non_square_size_reaches_every_command_and_names_its_record(matrix, tmp_path: Path, monkeypatch) -> None:
    from synth.data import ImageSize

    monkeypatch.setattr(matrix, "count_normal", lambda category: 40)  # no ../shared/data needed

    wide = matrix.published(tmp_path / "work", size=ImageSize(64, 128), seeds=1, generators=("draem",),
                            detectors=("prn",))
    assert {option(wide.command(unit), "--size") for unit in matrix.units(wide)} == {"64x128"}
    assert matrix.default_record(wide.size).name == "matrix-64x128px"
    assert matrix.default_record(ImageSize.square(128)).name == "matrix-128px"  # the recorded results' folder


def test_image_conditioned_sdas_gets_its_models_strength(matrix, tmp_path: Path) -> None:
    published = matrix.published(tmp_path / "work", seeds=1, generators=("sdas", "sdas-t0"), detectors=("realnet",))
    for category, strength in matrix.T0_STRENGTH.items():
        conditioned = published.gen_command(Shards(category, "sdas-t0", 0))
        assert option(conditioned, "--s") == strength and option(conditioned, "-o") == "t0=400"
        assert "mask=both" in conditioned and "--blend" in conditioned
        assert "--s" not in published.gen_command(Shards(category, "sdas", 0))  # the paper's default range


@pytest.mark.parametrize(("generator", "kind", "name"), [
    ("sdas-t0", "image-conditioned SDAS", "SDAS from the image"), ("strokes", "thin strokes", "thin strokes")])
def test_generators_are_judged_against_dtd_for_every_detector_with_both(run, generator, kind, name) -> None:
    _, section = run("--generators", f"draem,{generator}", fail=f"bottle/{generator}/prn/")
    for category in CATEGORIES:
        assert (f"- {category}, RealNet trained on {kind} vs. on DTD anomalies: "
                f"no difference shown between {name}") in section
    assert f"- metal_plate, PRN trained on {kind} vs. on DTD anomalies:" in section
    assert f"- bottle, PRN trained on {kind}" not in section  # its cell failed: no verdict
