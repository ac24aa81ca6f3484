"""`detectors matrix` with a fake runner (no trainings, no ../shared/data): every cell once, resuming
without refitting, one-line errors, verdicts equal to the bootstrap, the report and its plots."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

import detectors.matrix.runner as runner_module
from detectors.cli import main
from detectors.matrix.inputs import generator_rows, split_generators
from detectors.matrix.plots import pyplot
from detectors.evaluation.metrics import paired_difference_interval_over_seeds
from synth.data import ImageSize
from synth.errors import SynthError
from synth.shards.card import DATASET_FORMAT
from tests.test_detectors_cli import write_shards

LABELS = [0] * 8 + [1] * 8
SIDE = 32


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def image_scores(detector: str, out: str, seed: int) -> list[float]:
    """SimpleNet on draem ranks the test images perfectly; everything else scores at random."""
    rng = np.random.default_rng(seed)
    perfect = detector == "simplenet" and "/draem/" in out
    return (np.array(LABELS) + rng.uniform(0, 0.5, len(LABELS)) if perfect else rng.uniform(0, 1, len(LABELS))).tolist()


def write_overlays(folder: Path, detector: str) -> None:
    """Two overlays as `detectors bench` names them: image | ground truth | map, side by side."""
    folder.mkdir(parents=True)
    for index, defect in ((0, "good"), (9, "scratch")):
        panel = np.full((SIDE, 3 * SIDE, 3), 40 * (index + 1) % 255, np.uint8)
        cv2.imwrite(str(folder / f"{detector}_{index:03d}_{defect}.png"), panel)


class FakeRunner:
    """Records commands; writes what `synth gen` (shards, a complete manifest) or `detectors bench` would."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def __call__(self, command: list[str]) -> str | None:
        self.commands.append(command)
        out = Path(option(command, "--out"))
        if "gen" in command:
            rng = np.random.default_rng(0)
            rows = [(rng.integers(0, 255, (SIDE, SIDE, 3), dtype=np.uint8), np.full((SIDE, SIDE), 255, np.uint8))] * 2
            write_shards(out, rows)
            (out / "manifest.json").write_text(json.dumps({
                "format": DATASET_FORMAT, "num_shards": 1, "complete": True,
                **ImageSize.coerce(option(command, "--size")).record(), "num_samples": int(option(command, "-n"))}))
            return None
        detector = option(command, "--detectors")
        seed = int(next(s for s in command if s.startswith(f"{detector}.seed=")).partition("=")[2])
        out.mkdir(parents=True, exist_ok=True)
        write_overlays(out / "overlays", detector)
        result = {"detector": detector, "fit_seconds": 10.0 + seed, "score_seconds": 2.0,
                  "metrics": {"image_auroc": 0.6 + 0.1 * seed, "pixel_auroc": 0.9, "aupro_0.3": 0.5, "pixel_ap": 0.4},
                  "intervals": {"image_auroc": [0.5, 0.9], "pixel_auroc": [0.85, 0.95]},
                  "image_scores": image_scores(detector, out.as_posix(), seed),
                  "training": None if detector == "patchcore" else {"steps": 100, "stopped_early": True}}
        (out / "results.json").write_text(json.dumps({"torch_threads": 1, "labels": LABELS, "results": [result]}))
        return None

    def of(self, kind: str) -> list[list[str]]:
        return [command for command in self.commands if kind in command]


@pytest.fixture
def matrix(mvtec_tree: Path, tmp_path: Path, monkeypatch, capsys):
    """Runs `detectors matrix ARGS` in tmp_path with a FakeRunner; returns (runner, status, stderr)."""
    monkeypatch.chdir(tmp_path)

    def invoke(*extra: str, out: str = "mx") -> tuple[FakeRunner, int, str]:
        runner = FakeRunner()
        monkeypatch.setattr(runner_module, "Runner", lambda log, root: runner)
        arguments = ["matrix", "--data", str(mvtec_tree), "--category", "widget", "--size", str(SIDE),
                     "--count", "10", "--detectors", "simplenet", "--out", out, *extra]
        with pytest.raises(SystemExit) as exit_:
            main(arguments)
        return runner, exit_.value.code, capsys.readouterr().err

    return invoke


def test_every_cell_once_then_resume_refits_nothing(matrix, tmp_path: Path) -> None:
    runner, status, _ = matrix("--generators", "cutpaste-union,draem", "--detectors", "simplenet,glass",
                               "--seeds", "2")
    assert status == 0
    assert len(runner.of("gen")) == 2 * 2 and len(runner.of("bench")) == 2 * (1 + 2 * 2)
    made = [option(command, "--out") for command in runner.commands]
    for command in runner.of("bench"):
        if "--anomalies" in command:  # each generator's shards are made before a detector trains on them
            assert made.index(option(command, "--anomalies")) < made.index(option(command, "--out"))
    assert "--overlays" in runner.of("bench")[0] and (tmp_path / "mx" / "report.md").exists()
    again, status, _ = matrix("--generators", "cutpaste-union,draem", "--detectors", "simplenet,glass",
                              "--seeds", "2")
    assert status == 0 and again.commands == []
    bench = tmp_path / "mx" / "bench" / "widget"
    (bench / "draem" / "glass" / "seed1" / "results.json").unlink()  # interrupted
    shutil.rmtree(bench / "cutpaste-union" / "simplenet" / "seed0")  # never started
    resumed, _, _ = matrix("--generators", "cutpaste-union,draem", "--detectors", "simplenet,glass",
                           "--seeds", "2")
    outs = {option(command, "--out"): command for command in resumed.commands}
    assert set(outs) == {"mx/bench/widget/draem/glass/seed1", "mx/bench/widget/cutpaste-union/simplenet/seed0"}
    assert "--overwrite" in outs["mx/bench/widget/draem/glass/seed1"]
    assert "--overwrite" not in outs["mx/bench/widget/cutpaste-union/simplenet/seed0"]


def test_settings_reach_every_command(matrix, tmp_path: Path) -> None:
    runner, status, _ = matrix("--generators", "draem", "--detectors", "simplenet", "--seeds", "1", "--size", "32x64",
                               "--tile", "32", "--threads", "1", "--textures", str(tmp_path),
                               "--set", "simplenet.lr=0.001", "--set", "patchcore.coreset_ratio=0.5")
    assert status == 0
    gen, = runner.of("gen")
    assert option(gen, "--size") == "32x64" and option(gen, "--textures") == str(tmp_path)
    trained = next(c for c in runner.of("bench") if option(c, "--detectors") == "simplenet")
    patchcore = next(c for c in runner.of("bench") if option(c, "--detectors") == "patchcore")
    assert option(trained, "--tile") == "32" and option(trained, "--threads") == "1"
    assert "simplenet.lr=0.001" in trained and "simplenet.seed=0" in trained
    assert "patchcore.coreset_ratio=0.5" in patchcore and option(patchcore, "--size") == "32x64"


def test_an_existing_shard_set_is_a_row_without_generation(matrix, tmp_path: Path) -> None:
    first, _, _ = matrix("--generators", "draem", "--detectors", "simplenet", "--seeds", "1", out="first")
    runner, status, _ = matrix("--anomalies", "first/shards/widget/draem/seed0", "--detectors", "simplenet",
                               "--seeds", "2")
    assert status == 0 and runner.of("gen") == []
    trained = [c for c in runner.of("bench") if "--anomalies" in c]
    assert [option(c, "--out") for c in trained] == ["mx/bench/widget/seed0/simplenet/seed0",
                                                      "mx/bench/widget/seed0/simplenet/seed1"]
    assert {option(c, "--anomalies") for c in trained} == {"first/shards/widget/draem/seed0"}


def test_mixes_are_rows_named_after_their_components() -> None:
    assert split_generators("draem,strokes,mix:draem=1,strokes=1") == ["draem", "strokes", "mix:draem=1,strokes=1"]
    rows = generator_rows("draem,mix:draem=1,strokes=1,mix:draem=3,cutpaste-union=1", None)
    assert rows == {"draem": ("-g", "draem"), "mix-draem-strokes": ("-g", "mix", "--mix", "draem=1,strokes=1"),
                    "mix-draem3-cutpaste-union1": ("-g", "mix", "--mix", "draem=3,cutpaste-union=1")}
    with pytest.raises(SynthError, match="follows no mix"):
        split_generators("draem,strokes=1")


@pytest.mark.parametrize("extra, problem", [
    (["--generators", "plasma"], "unknown generator 'plasma'"),
    (["--generators", "mix"], "'mix' is no anomaly generator"),
    (["--generators", "mix:draem=x"], "weight of 'draem' is not a number"),
    (["--generators", "mix:draem=1,plasma=1"], "unknown generator 'plasma'"),
    (["--generators", "draem,draem"], "names draem twice"),
    (["--detectors", "padim"], "unknown detector 'padim'"),
    (["--detectors", "patchcore"], "patchcore runs as the reference"),
    (["--detectors", ""], "names no detector"),
    (["--seeds", "0"], "--seeds"),
    (["--size", "0"], "--size"),
    (["--size", "big"], "--size"),
    (["--category", "nuts"], "nuts"),
    (["--data", "missing"], "missing does not exist"),
    (["--set", "simplenet.nonsense=1"], "simplenet has no setting 'nonsense'"),
    (["--set", "prn.lr=0.1"], "--set prn.lr: expected DETECTOR.KEY=VALUE"),
    (["--set", "simplenet.lr=abc"], "simplenet setting lr='abc'"),
    (["--tile", "4096"], "tile"),
    (["--detectors", "realnet"], "realnet needs image sides that are multiples of 128, got --size 32"),
    (["--anomalies", "."], "is not a synth dataset"),
    (["--textures", "missing"], "--textures"),
])
def test_bad_input_is_one_line_and_status_2(matrix, extra, problem) -> None:
    runner, status, err = matrix("--generators", "draem", *extra)
    assert status == 2 and runner.commands == []
    assert err.startswith("error: ") and err.count("\n") == 1 and problem in err, err


def test_an_out_folder_of_something_else_or_other_settings_is_refused(matrix, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    assert matrix("--generators", "draem", out="file")[1] == 2
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("x")
    runner, status, err = matrix("--generators", "draem", out="notes")
    assert status == 2 and "is not a matrix folder" in err and runner.commands == []
    matrix("--generators", "draem", "--detectors", "simplenet", "--seeds", "1")
    runner, status, err = matrix("--generators", "draem", "--detectors", "simplenet", "--seeds", "1", "--count", "20")
    assert status == 2 and runner.commands == [] and err.count("\n") == 1
    assert "mx holds results made with other settings (widget/draem/seed0 gen: num_samples=10 (this run asks 20))" \
        in err


def test_report_verdicts_match_the_bootstrap(matrix, tmp_path: Path) -> None:
    matrix("--generators", "cutpaste-union,draem", "--detectors", "simplenet", "--seeds", "3")
    report = json.loads((tmp_path / "mx" / "report.json").read_text())
    widget, = report["categories"]
    reference = [image_scores("patchcore", f"mx/bench/widget/patchcore/seed{s}", s) for s in range(3)]
    for cell in widget["cells"]:
        trained = [image_scores("simplenet", f"mx/bench/widget/{cell['generator']}/simplenet/seed{s}", s)
                   for s in range(3)]
        estimate, low, high = paired_difference_interval_over_seeds(np.array(LABELS), [np.array(s) for s in trained],
                                                                    [np.array(s) for s in reference])
        against = cell["vs_patchcore"]
        assert against["difference"] == pytest.approx(estimate) and against["interval"] == pytest.approx([low, high])
        expected = ("better than PatchCore" if low > 0 else "worse than PatchCore" if high < 0
                    else "no difference shown")
        assert against["verdict"] == expected
    draem = next(cell for cell in widget["cells"] if cell["generator"] == "draem")
    assert draem["vs_patchcore"]["verdict"] == "better than PatchCore"
    assert draem["metrics"]["image_auroc"]["mean"] == pytest.approx(0.7)
    assert draem["metrics"]["image_auroc"]["std"] == pytest.approx(0.1)
    text = (tmp_path / "mx" / "report.md").read_text()
    assert "| draem | simplenet | 3 | 0.700 ± 0.100 | 0.900 ± 0.000 | 0.500 ± 0.000 | 0.400 ± 0.000 |" in text
    assert "| normal only | patchcore | 3 |" in text and "better than PatchCore" in text
    assert "**Recommended: simplenet trained on cutpaste-union**" in text  # ties go to the first row
    assert str(tmp_path) not in text + json.dumps(report)


def test_the_plots_are_written(matrix, tmp_path: Path) -> None:
    if pyplot() is None:
        pytest.skip("matplotlib is not installed (the plots extra)")
    matrix("--generators", "cutpaste-union,draem", "--detectors", "simplenet,glass", "--seeds", "2")
    for name in ("auroc_widget.png", "sheet_widget.png"):
        image = cv2.imread(str(tmp_path / "mx" / name))
        assert image is not None and min(image.shape[:2]) > 100
        assert f"]({name})" in (tmp_path / "mx" / "report.md").read_text()


def test_without_matplotlib_the_report_is_still_written(matrix, tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    pyplot.cache_clear()
    try:
        _, status, _ = matrix("--generators", "draem", "--detectors", "simplenet", "--seeds", "1")
    finally:
        pyplot.cache_clear()
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert status == 0 and warnings == ["the report's plots need matplotlib: pip install 'synth[plots]'"]
    assert (tmp_path / "mx" / "report.md").exists() and not list((tmp_path / "mx").glob("*.png"))
