"""A corpus of bad inputs (issue 35): each is refused with one line and exit status 2, or warned about,
and nothing is lost, written outside the output directory or mixed; plus the kill tests."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from detectors.cli import check_anomaly_sources
from detectors.cli import main as detectors_main
from synth.safety.locking import LOCK_NAME, output_lock
from tests.conftest import noise_image, run_cli, write_image

REPO = Path(__file__).resolve().parents[1]
GEN = ["gen", "-g", "cutpaste", "--category", "brick", "--size", "32", "--shard-size", "4"]


def one_line_error(status: int, err: str, text: str) -> bool:
    lines = [line for line in err.strip().splitlines() if line.startswith("error: ")]
    return status == 2 and len(lines) == 1 and text in lines[0] and "Traceback" not in err


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def row_seeds(out: Path) -> set[int]:
    return set(pq.read_table(out / "data", columns=["seed"]).column("seed").to_pylist())


@pytest.fixture
def dataset(tmp_path, capsys) -> Path:
    """A finished 8-row cutpaste dataset in 2 shards."""
    out = tmp_path / "set"
    assert run_cli([*GEN, "-n", 8, "--out", out], capsys)[0] == 0
    return out


def recipe(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.toml"
    path.write_text(text)
    return path


BRICK = '[recipe]\nlayout = "builtin"\nnum_samples = 2\n{extra}\n[categories.{category}]\n'

# (case, arguments with {tmp} and {ds} placeholders, a recipe text or None, the expected message)
SYNTH_CASES = [
    ("unused --s", [*GEN, "-n", 2, "--s", "0.1", "--out", "{tmp}/o"], None, "does not use --s"),
    ("unused --mix", [*GEN, "-n", 2, "--mix", "normal=1", "--out", "{tmp}/o"], None, "does not use --mix"),
    ("mix name twice", ["gen", "-g", "mix", "--mix", "normal=0.5,normal=0.5", "--category", "brick", "--size", 32,
                        "-n", 2, "--out", "{tmp}/o"], None, "named twice"),
    ("huge --s", ["gen", "-g", "sdas", "--category", "brick", "--size", 32, "-n", 2, "--s", "1e6", "--out", "{tmp}/o"],
     None, "--s must be at most 10"),
    ("empty --s", ["gen", "-g", "sdas", "--category", "brick", "--size", 32, "-n", 2, "--s", "", "--out", "{tmp}/o"],
     None, "--s must be a value"),
    ("score --s nan", ["score", "{ds}", "--s", "nan", "-n", 4, "--out", "{tmp}/o"], None, "--s must be a value"),
    ("--model is a file", ["gen", "-g", "sdas", "--category", "brick", "--size", 32, "-n", 2, "--model", "{ds}/README.md",
                           "--out", "{tmp}/o"], None, "is a file"),
    ("score a missing local path", ["score", "./missing/model", "--out", "{tmp}/o"], None,
     "model ./missing/model does not exist"),
    ("export with a missing --data", ["export", "{ds}", "--data", "/nonexistent", "--out", "{tmp}/o"], None,
     "does not exist"),
    ("train --resume with nothing to resume", ["train", "--preset", "micro", "--steps", 1, "--resume", "--out",
                                               "{tmp}/o"], None, "nothing to resume"),
    ("recipe name leaves the root", ["run", "{recipe}", "--dry-run"], BRICK.format(extra='name = "../../evil"',
                                                                                   category="brick"),
     "cannot be a folder name"),
    ("recipe category leaves the root", ["run", "{recipe}", "--dry-run"], BRICK.format(extra="", category='"../x"'),
     "cannot be a folder name"),
    ("recipe number in words", ["run", "{recipe}", "--dry-run"], '[recipe]\nnum_samples = "four"\n[categories.brick]\n',
     "num_samples must be a whole number"),
    ("recipe unknown key", ["run", "{recipe}", "--dry-run"], BRICK.format(extra="sampling_stepz = 3", category="brick"),
     "unknown key 'sampling_stepz'"),
    ("recipe unknown category", ["run", "{recipe}", "--dry-run", "--models", "{tmp}/models"],
     BRICK.format(extra="", category="nocat"), "no --data to train one on"),
    ("recipe unknown preset", ["run", "{recipe}", "--dry-run"], BRICK.format(extra="", category="brick") + 'preset = "x"\n',
     "unknown preset 'x'"),
    ("category as the default --out leaves the root", ["gen", "-g", "cutpaste", "--category", "../o", "-n", 2], None,
     "cannot be a folder name"),
    ("recipe is a directory", ["run", "{tmp}", "--dry-run"], None, "is a directory"),
    # cases that held before issue 35: they stay held
    ("resume and overwrite", [*GEN, "-n", 2, "--resume", "--overwrite", "--out", "{tmp}/o"], None, "exclude each other"),
    ("unknown generator", ["gen", "-g", "nope", "--category", "brick", "-n", 2, "--out", "{tmp}/o"], None, "nope"),
    ("zero samples", [*GEN, "-n", 0, "--out", "{tmp}/o"], None, "-n must be positive"),
    ("resume a missing directory", [*GEN, "-n", 2, "--resume", "--out", "{tmp}/o"], None, "nothing to resume"),
    ("gen into a full directory", [*GEN, "-n", 2, "--out", "{ds}"], None, "is not empty"),
    ("export category leaves the root", ["export", "{ds}", "--category", "../x", "--out", "{tmp}/o"], None,
     "cannot be a folder name"),
    ("recipe missing", ["run", "{tmp}/none.toml"], None, "does not exist"),
]


@pytest.mark.parametrize("case, args, recipe_text, message", SYNTH_CASES, ids=[case[0] for case in SYNTH_CASES])
def test_synth_bad_input_is_one_line_and_writes_nothing(dataset, tmp_path, capsys, monkeypatch, case, args,
                                                        recipe_text, message):
    monkeypatch.chdir(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    path = recipe(work, recipe_text) if recipe_text else None
    words = [str(a).format(tmp=work, ds=dataset, recipe=path) for a in args]
    before = files_under(dataset)
    status, _, err = run_cli(words, capsys)
    assert one_line_error(status, err, message), err
    assert not (work / "o").exists()
    assert files_under(dataset) == before


def test_overwrite_never_acts_through_a_link_out_of_the_directory(dataset, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    (dataset / "data").rename(elsewhere)
    (dataset / "data").symlink_to(elsewhere)
    before = files_under(elsewhere)
    status, _, err = run_cli([*GEN, "-n", 8, "--seed", 2, "--overwrite", "--out", dataset], capsys)
    assert one_line_error(status, err, "leads outside"), err
    assert files_under(elsewhere) == before
    status, _, err = run_cli([*GEN, "-n", 8, "--resume", "--out", dataset], capsys)
    assert one_line_error(status, err, "leads outside"), err
    assert files_under(elsewhere) == before


def test_overwrite_checks_a_stray_shard_before_deleting_anything(dataset, capsys):
    stray = dataset / "data" / "train-00005-of-00009.parquet"
    stray.write_bytes(b"mine")
    before = files_under(dataset)
    status, _, err = run_cli([*GEN, "-n", 8, "--seed", 2, "--overwrite", "--out", dataset], capsys)
    assert one_line_error(status, err, "is not a shard synth wrote"), err
    assert files_under(dataset) == before


def test_a_second_writer_is_refused_naming_the_holder(dataset, capsys):
    with output_lock(dataset):
        status, _, err = run_cli([*GEN, "-n", 8, "--seed", 2, "--overwrite", "--out", dataset], capsys)
        assert one_line_error(status, err, f"is being written by process {os.getpid()}"), err
        status, _, err = run_cli(["export", dataset, "--out", dataset.parent / "x"], capsys)
        assert status == 0, err  # the dataset is only read; its export folder is another directory
    assert row_seeds(dataset) == {0}
    assert not (dataset / LOCK_NAME).exists()  # a finished writer leaves only its dataset


def test_a_stale_lock_file_of_a_dead_process_is_taken_over(dataset, capsys):
    (dataset / LOCK_NAME).write_text("process 999999 (synth gen ...)")
    assert run_cli([*GEN, "-n", 8, "--seed", 2, "--overwrite", "--out", dataset], capsys)[0] == 0
    assert row_seeds(dataset) == {2}


def test_failed_export_leaves_nothing_and_the_retry_works(dataset, tmp_path, capsys):
    out = tmp_path / "export"
    status, _, err = run_cli(["export", dataset, "--data", tmp_path / "nonexistent", "--out", out], capsys)
    assert one_line_error(status, err, "does not exist"), err
    assert not out.exists()
    out.mkdir()  # an empty folder given by the user stays, empty
    status, _, err = run_cli(["export", dataset, "--data", tmp_path / "nonexistent", "--out", out], capsys)
    assert status == 2 and out.is_dir() and not any(out.iterdir())
    assert run_cli(["export", dataset, "--out", out], capsys)[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["brick"]


def test_score_of_a_truncated_shard_is_one_line(dataset, tmp_path, capsys):
    shard = dataset / "data" / "train-00001-of-00002.parquet"
    shard.write_bytes(shard.read_bytes()[:100])
    status, _, err = run_cli(["score", dataset, "-n", 4, "--out", tmp_path / "score"], capsys)
    assert one_line_error(status, err, "is unreadable"), err


def test_score_warns_about_another_category(dataset, monkeypatch, caplog):
    from synth.quality import score

    def stop(*_):
        raise RuntimeError("stop before the features")

    monkeypatch.setattr(score, "dataset_images", stop)
    with caplog.at_level(logging.WARNING, logger="synth"), pytest.raises(RuntimeError):
        score.score_dataset(dataset, "metal_plate", None, None, 4)
    assert "scoring a brick dataset against the normal images of metal_plate" in caplog.text


def test_fully_transparent_images_are_warned_about(tmp_path, capsys, caplog):
    rgba = np.zeros((24, 24, 4), np.uint8)
    rgba[..., :3] = 200
    good = tmp_path / "d/cat/train/good"
    good.mkdir(parents=True)
    for i in range(2):
        assert cv2.imwrite(str(good / f"{i}.png"), rgba)
    with caplog.at_level(logging.WARNING, logger="synth"):
        status, _, err = run_cli(["gen", "-g", "normal", "--data", tmp_path / "d", "--category", "cat", "--size", 16,
                                  "-n", 2, "--out", tmp_path / "o"], capsys)
    assert status == 0, err
    assert "fully transparent" in caplog.text


def test_recipe_name_stays_inside_the_output_root(tmp_path, capsys, monkeypatch):
    (tmp_path / "a/b").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a/b")
    path = recipe(tmp_path, BRICK.format(extra='name = "../../evil"', category="brick"))
    status, _, err = run_cli(["run", path], capsys)
    assert one_line_error(status, err, "cannot be a folder name"), err
    assert not (tmp_path / "evil").exists()


# --- permissions: run as a user the permission bits bind (root bypasses them) -----------------------------------

def read_only(path: Path):
    """Make ``path`` read-only; skip the test when that does not stop writes (root, some file systems)."""
    path.chmod(0o555 if path.is_dir() else 0o444)
    probe = (path / ".probe") if path.is_dir() else path
    try:
        with open(probe, "a"):
            pass
    except PermissionError:
        return
    if path.is_dir():
        probe.unlink()
    path.chmod(0o755)
    pytest.skip("permission bits do not stop writes here (running as root?)")


@pytest.fixture
def restore_permissions(tmp_path):
    yield
    for path in [tmp_path, *tmp_path.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)


def test_overwrite_of_a_read_only_dataset_is_one_line_and_deletes_nothing(dataset, capsys, restore_permissions):
    before = files_under(dataset)
    read_only(dataset)
    status, _, err = run_cli([*GEN, "-n", 8, "--seed", 2, "--overwrite", "--out", dataset], capsys)
    assert one_line_error(status, err, "cannot write to output directory"), err
    assert files_under(dataset) == before


@pytest.mark.parametrize("command", [["export", "{ds}"], ["score", "{ds}", "-n", 4],
                                     ["train", "--preset", "micro", "--steps", 1]])
def test_out_under_a_read_only_parent_is_one_line(dataset, tmp_path, capsys, restore_permissions, command):
    parent = tmp_path / "locked"
    parent.mkdir()
    read_only(parent)
    status, _, err = run_cli([str(a).format(ds=dataset) for a in command] + ["--out", parent / "o"], capsys)
    assert one_line_error(status, err, "cannot create output directory"), err


@pytest.mark.parametrize("unreadable", ["image", "folder"])
def test_unreadable_training_images_are_one_line(tmp_path, capsys, caplog, restore_permissions, unreadable):
    rng = np.random.default_rng(0)
    good = tmp_path / "d/cat/train/good"
    paths = [write_image(good / f"{i}.png", noise_image(rng, 24)) for i in range(2)]
    for path in paths if unreadable == "image" else [good]:
        path.chmod(0)
    if os.access(paths[0] if unreadable == "image" else good, os.R_OK):
        pytest.skip("permission bits do not stop reads here (running as root?)")
    status, _, err = run_cli(["gen", "-g", "normal", "--data", tmp_path / "d", "--category", "cat", "--size", 16,
                              "-n", 2, "--out", tmp_path / "o"], capsys)
    assert one_line_error(status, err, "cannot read" if unreadable == "folder" else "no readable images"), err


# --- detectors ------------------------------------------------------------------------------------------------

def detectors(args: list, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_:
        detectors_main([str(a) for a in args])
    return exit_.value.code, capsys.readouterr().err


def damaged(dataset: Path, how: str) -> Path:
    data = dataset / "data"
    if how == "missing shard":
        (data / "train-00001-of-00002.parquet").unlink()
    elif how == "foreign shard":  # counted as written, it once made "incomplete (3 of 2 shards written)"
        shutil.copy(data / "train-00000-of-00002.parquet", data / "train-00000-of-00001.parquet")
    else:
        (dataset / "manifest.json").write_text("{not json")
    return dataset


@pytest.mark.parametrize("args, message", [
    (["--set", "simplenet.lr=nan"], "not a finite number"),
    (["--anomalies", "./missing/set"], "anomaly dataset ./missing/set does not exist"),
    (["--anomalies", "{missing shard}"], "is damaged: 1 of its 2 shards are missing"),
    (["--anomalies", "{malformed manifest}"], "manifest.json is unreadable or not synth's"),
    (["--anomalies", "{foreign shard}"], "is not a shard of this dataset"),
])
def test_detectors_bad_input_is_one_line_before_the_fit(mvtec_tree, dataset, tmp_path, capsys, monkeypatch, args,
                                                         message):
    from detectors.evaluation import bench

    monkeypatch.setattr(bench, "fit_detector", lambda *_: pytest.fail("fitted despite bad input"))
    words = [damaged(dataset, a[1:-1]) if a.startswith("{") else a for a in args]
    status, err = detectors(["bench", "--data", mvtec_tree, "--category", "widget", "--size", 32,
                             "--detectors", "simplenet", *words, "--out", tmp_path / "res"], capsys)
    assert one_line_error(status, err, message), err


def test_a_test_folder_without_masks_is_refused_before_the_fit(mvtec_tree, tmp_path, capsys, monkeypatch):
    from detectors.evaluation import bench

    shutil.rmtree(mvtec_tree / "widget/ground_truth")
    monkeypatch.setattr(bench, "fit_detector", lambda *_: pytest.fail("fitted despite a test set without masks"))
    status, err = detectors(["bench", "--data", mvtec_tree, "--category", "widget", "--size", 32,
                             "--detectors", "patchcore", "--out", tmp_path / "res"], capsys)
    assert one_line_error(status, err, "ground_truth/scratch"), err
    assert not (tmp_path / "res" / "models").exists()


def test_anomalies_of_another_category_or_size_are_warned_about(dataset, caplog):
    with caplog.at_level(logging.WARNING, logger="detectors"):
        check_anomaly_sources([str(dataset)], "brick", 32)
        assert not caplog.text
        check_anomaly_sources([str(dataset)], "bottle", 64)
    assert "made from brick, not bottle" in caplog.text and "made at 32 px" in caplog.text


# --- processes: a killed parent, two concurrent writers -------------------------------------------------------

psutil = pytest.importorskip("psutil")
needs_posix = pytest.mark.skipif(sys.platform == "win32", reason="process groups and SIGKILL are POSIX")


def synth_process(args: list, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "synth", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for(condition, timeout: float = 120.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds (a hang, not a slow machine)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting")
        time.sleep(0.05)


@needs_posix
def test_workers_die_with_a_killed_parent_and_the_lock_is_free(tmp_path):
    out = tmp_path / "big"
    parent = synth_process([*GEN, "-n", 100000, "--num-processes", 2, "--out", out], tmp_path)
    try:
        wait_for(lambda: len(list((out / "data").glob("train-*.parquet"))) >= 2 if (out / "data").is_dir() else False)
        children = psutil.Process(parent.pid).children(recursive=True)
        assert len(children) >= 2
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=60)
        _, alive = psutil.wait_procs(children, timeout=30)
        assert alive == []
        with output_lock(out):  # no process of the killed run still holds or writes the directory
            shards = sorted((out / "data").glob("*"))
        assert sorted((out / "data").glob("*")) == shards
    finally:
        for process in psutil.Process().children(recursive=True):
            process.kill()


@needs_posix
def test_concurrent_overwrites_never_mix_two_datasets(dataset, tmp_path):
    first = synth_process([*GEN, "-n", 100000, "--seed", 2, "--overwrite", "--out", dataset], tmp_path)
    try:
        wait_for(lambda: len(list((dataset / "data").glob("*.parquet"))) > 2)  # the old dataset is gone
        second = synth_process([*GEN, "-n", 8, "--seed", 3, "--overwrite", "--out", dataset], tmp_path)
        _, err = second.communicate(timeout=120)
        assert one_line_error(second.returncode, err, f"is being written by process {first.pid}"), err
        assert first.poll() is None  # the first writer was never disturbed
    finally:
        first.kill()
        first.communicate()
    assert json.loads((dataset / "manifest.json").read_text())["seed"] == 2
    assert row_seeds(dataset) == {2}


def flipped(data: bytes, at: int) -> bytes:
    """``data`` with the byte at ``at`` inverted (inside a PNG's image data: libpng reports it on stderr)."""
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


def test_an_undecodable_png_is_one_line_without_opencv_or_libpng_noise(tmp_path, capfd):
    from detectors.data.training import read_anomalies
    from synth.errors import SynthError
    from synth.pipeline.plan import GenerationPlan, run_plan

    dataset = run_plan(GenerationPlan(generator="cutpaste", category="brick", size=32, shard_size=4, num_samples=8,
                                      out=tmp_path / "set"), progress=False)
    shard = dataset / "data" / "train-00000-of-00002.parquet"
    table = pq.read_table(shard)
    broken = [{"bytes": flipped(cell["bytes"], len(cell["bytes"]) // 2), "path": None}
              for cell in table.column("image").to_pylist()]
    pq.write_table(table.set_column(table.schema.get_field_index("image"), "image",
                                    pa.array(broken, table.schema.field("image").type)), shard)
    capfd.readouterr()
    with pytest.raises(SynthError, match="an undecodable image or mask"):
        read_anomalies(dataset, 32)
    assert capfd.readouterr().err == ""
