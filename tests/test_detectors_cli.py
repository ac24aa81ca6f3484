"""The `detectors` command end to end on a tiny MVTec-layout category, synth shards, and its bad-input errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from detectors.cli import fraction_setting, main
from detectors.data.training import read_anomalies
from synth.data import load_category
from synth.errors import SynthError
from tests.conftest import write_image
from tests.test_detectors_models import one_thread  # noqa: F401  (autouse: one torch thread)

SIZE = 64
REPO = Path(__file__).resolve().parents[1]


def _with_square(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    image, mask = image.copy(), np.zeros(image.shape[:2], np.uint8)
    y, x = rng.integers(4, SIZE - 16, 2)
    image[y:y + 12, x:x + 12] = 255 - image[y:y + 12, x:x + 12]
    mask[y:y + 12, x:x + 12] = 255
    return image, mask


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """ROOT/tiles: 12 normal brick crops, 3 good and 3 defective (inverted square) test images."""
    root = tmp_path_factory.mktemp("data")
    images = load_category(None, "brick", size=SIZE).train_images
    rng = np.random.default_rng(0)
    for i in range(12):
        write_image(root / "tiles/train/good" / f"{i:03d}.png", images[i])
    for i in range(3):
        write_image(root / "tiles/test/good" / f"{i:03d}.png", images[50 + i])
        image, mask = _with_square(images[60 + i], rng)
        write_image(root / "tiles/test/square" / f"{i:03d}.png", image)
        write_image(root / "tiles/ground_truth/square" / f"{i:03d}_mask.png", mask)
    return root


def _png(array: np.ndarray) -> dict:
    ok, data = cv2.imencode(".png", cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array)
    assert ok
    return {"bytes": data.tobytes(), "path": None}


def write_shards(directory: Path, rows: list[tuple[np.ndarray, np.ndarray]]) -> Path:
    """A synth dataset directory with the shard column layout (image/mask PNG structs, index, seed, ...)."""
    (directory / "data").mkdir(parents=True)
    table = pa.table({"image": [_png(image) for image, _ in rows], "mask": [_png(mask) for _, mask in rows],
                      "index": list(range(len(rows))), "seed": [0] * len(rows), "source": ["x"] * len(rows),
                      "category": ["tiles"] * len(rows), "generator": ["test"] * len(rows)})
    pq.write_table(table, directory / "data" / "train-00000-of-00001.parquet")
    return directory


def run(args: list, capsys) -> tuple[int, str, str]:
    """`detectors ARGS` in this process: (exit status, stdout, stderr); main always ends with sys.exit."""
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_.value.code, captured.out, captured.err


def test_bench_writes_results_models_and_overlays(tiny, tmp_path, capsys):
    rng = np.random.default_rng(5)
    images = load_category(None, "brick", size=SIZE).train_images
    shards = write_shards(tmp_path / "synth", [_with_square(images[80 + i], rng) for i in range(4)])
    out = tmp_path / "results"
    status, stdout, err = run(["bench", "--data", tiny, "--category", "tiles", "--size", SIZE,
                               "--detectors", "patchcore,simplenet", "--anomalies", shards,
                               "--set", "simplenet.max_steps=5", "--set", "simplenet.hidden=32",
                               "--set", "simplenet.val_every=0",
                               "--overlays", 2, "--out", out], capsys)
    assert status == 0, err
    assert "| patchcore |" in stdout and "| simplenet |" in stdout
    document = json.loads((out / "results.json").read_text())
    results = {r["detector"]: r for r in document["results"]}
    assert results["patchcore"]["metrics"]["image_auroc"] > 0.9
    assert results["patchcore"]["train_anomalies"] == 0 and results["simplenet"]["train_anomalies"] == 4
    assert results["simplenet"]["config"]["max_steps"] == 5
    assert [line.split(" | ")[0] for line in (out / "results.md").read_text().splitlines() if line.startswith("| ")] == [
        "| detector", "| patchcore", "| simplenet"]
    overlays = sorted((out / "overlays").glob("*.png"))
    assert len(overlays) == 4 and cv2.imread(str(overlays[0])).shape == (SIZE, 3 * SIZE, 3)
    # The saved model scores the same test set again through `detectors eval`.
    status, stdout, err = run(["eval", "--model", out / "models/patchcore", "--data", tiny, "--category", "tiles",
                               "--out", tmp_path / "eval"], capsys)
    assert status == 0, err
    metrics = json.loads((tmp_path / "eval/metrics.json").read_text())
    assert metrics["image_auroc"] == pytest.approx(results["patchcore"]["metrics"]["image_auroc"])
    # One defect type: its per-defect metrics are the whole test set's, and the table names it.
    assert list(metrics["per_defect"]) == ["square"]
    assert metrics["per_defect"]["square"] == pytest.approx({key: metrics[key] for key in metrics["per_defect"]["square"]})
    assert "| defect |" in stdout and "| square |" in stdout
    status, _, err = run(["bench", "--data", tiny, "--category", "tiles", "--detectors", "patchcore",
                          "--out", out], capsys)
    assert status == 2 and "--overwrite" in err


def test_fit_saves_a_model(tiny, tmp_path, capsys):
    status, stdout, err = run(["fit", "--detector", "patchcore", "--data", tiny, "--category", "tiles",
                               "--size", SIZE, "--set", "coreset_ratio=0.5", "--out", tmp_path / "model"], capsys)
    assert status == 0, err
    config = json.loads((tmp_path / "model/config.json").read_text())
    assert config["detector"] == "patchcore" and config["config"]["coreset_ratio"] == 0.5
    assert config["config"]["size"] == SIZE


def test_compare_gives_a_verdict_per_metric(tiny, tmp_path, capsys):
    for name, ratio in (("a", "0.5"), ("b", "0.01")):
        status, _, err = run(["fit", "--detector", "patchcore", "--data", tiny, "--category", "tiles", "--size", SIZE,
                              "--set", f"coreset_ratio={ratio}", "--out", tmp_path / name], capsys)
        assert status == 0, err
    status, stdout, err = run(["compare", "-a", tmp_path / "a", "-b", tmp_path / "b", "--data", tiny,
                               "--category", "tiles", "--names", "full,tiny", "--resamples", "50"], capsys)
    assert status == 0, err
    lines = stdout.splitlines()
    assert lines[0] == "full (1 seeds) vs. tiny (1 seeds) on tiles:" and len(lines) == 4
    assert [line.split(":")[0] for line in lines[1:]] == ["- image AUROC", "- pixel AUROC", "- AUPRO@0.3"]
    status, _, err = run(["compare", "-a", tmp_path / "a", "-b", tmp_path, "--data", tiny, "--category", "tiles"],
                         capsys)
    assert status == 2 and "is not a saved model" in err and "Traceback" not in err


def test_read_anomalies_from_shards(tmp_path):
    rows = [(np.full((32, 32, 3), 7, np.uint8), np.full((32, 32), 255, np.uint8))]
    anomalies = read_anomalies(write_shards(tmp_path / "synth", rows), size=16)
    assert len(anomalies) == 1
    image, mask = anomalies[0]
    assert image.shape == (16, 16, 3) and image.max() == 7 and mask.shape == (16, 16) and mask.min() == 255


def test_empty_shards_are_an_error(tmp_path):
    (tmp_path / "none/data").mkdir(parents=True)
    with pytest.raises(SynthError, match="no Parquet shards"):
        read_anomalies(tmp_path / "none", 16)
    empty = tmp_path / "empty/data"
    empty.mkdir(parents=True)
    pq.write_table(pa.table({"image": pa.array([], pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                             "mask": pa.array([], pa.struct([("bytes", pa.binary()), ("path", pa.string())]))}),
                   empty / "train-00000-of-00001.parquet")
    with pytest.raises(SynthError, match="no rows"):
        read_anomalies(tmp_path / "empty", 16)


@pytest.mark.parametrize("args", [
    ["bench", "--data", "{tiny}", "--category", "nuts", "--out", "{out}"],  # missing category
    ["bench", "--data", "{tiny}", "--category", "tiles", "--anomalies", "{empty}", "--out", "{out}"],  # empty shards
    ["bench", "--data", "{tiny}", "--category", "tiles", "--backbone", "vgg", "--out", "{out}"],  # unknown backbone
    ["bench", "--data", "{tiny}", "--category", "tiles", "--detectors", "padim", "--out", "{out}"],
    ["fit", "--detector", "patchcore", "--data", "{tiny}", "--category", "tiles", "--set", "ratio=1", "--out", "{out}"],
    ["eval", "--model", "{out}", "--data", "{tiny}", "--category", "tiles"],  # not a saved model
])
def test_bad_input_is_one_line_and_status_2(args, tiny, tmp_path, capsys):
    (tmp_path / "empty/data").mkdir(parents=True)
    values = {"tiny": tiny, "out": tmp_path / "out", "empty": tmp_path / "empty"}
    status, _, err = run([a.format(**values) for a in args], capsys)
    assert status == 2
    assert err.startswith("error: ") and err.count("\n") == 1


def test_console_entry_point_without_torchvision(tiny, tmp_path):
    # The real process: a torchvision backbone without torchvision installed (as here) is a one-line error.
    code = ("import sys; sys.modules['torchvision'] = None; from detectors.cli import main; main()")
    process = subprocess.run([sys.executable, "-c", code, "fit", "--detector", "patchcore", "--data", str(tiny),
                              "--category", "tiles", "--backbone", "resnet18", "--out", str(tmp_path / "m")],
                             cwd=REPO, capture_output=True, text=True, timeout=120)
    assert process.returncode == 2
    assert process.stderr.count("\n") == 1 and "needs torchvision" in process.stderr


def test_anomaly_fraction_reaches_the_detectors_that_mix_their_own_batches():
    assert fraction_setting("realnet", 0.3) == {"anomaly_fraction": 0.3}
    assert fraction_setting("patchcore-refine", 0.2) == {"anomaly_fraction": 0.2}
    assert fraction_setting("simplenet", 0.3) == {}  # its share is the training set's (load_training)
    assert fraction_setting("realnet", None) == {}
