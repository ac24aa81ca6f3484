"""Safe to overwrite, resume and publish: no lost user files, no files from outside, no local paths,
no tracebacks and nothing silently wrong (issue 13)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import warnings
from pathlib import Path

import datasets
import numpy as np
import pytest

from detectors.cli import load_training
from detectors.cli import main as detectors_main
from detectors.evaluation import bench
from synth.data import ImageSize, load_category
from synth.errors import SynthError
from synth.pipeline.plan import GenerationPlan, run_plan
from synth.shards import ShardWriter
from tests.conftest import noise_image, run_cli, write_image

GEN = ["gen", "--generator", "cutpaste", "--category", "brick", "--size", "32", "--shard-size", "4"]
REPO = Path(__file__).resolve().parents[1]


def shard_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "data").glob("*.parquet"))}


def one_line_error(status: int, err: str, text: str) -> bool:
    return status == 2 and text in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def detectors(args: list, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_:
        detectors_main([str(a) for a in args])
    return exit_.value.code, capsys.readouterr().err


@pytest.fixture
def dataset(tmp_path, capsys) -> Path:
    """A finished 10-row cutpaste dataset in 3 shards (4, 4, 2 rows)."""
    out = tmp_path / "set"
    assert run_cli([*GEN, "-n", 10, "--out", out], capsys)[0] == 0
    return out


def interrupted(out: Path, monkeypatch, shards_written: int = 1) -> Path:
    """A 10-row dataset whose run died after ``shards_written`` shards."""
    original = ShardWriter.write
    calls = {"n": 0}

    def dying(self, shard, rows):
        calls["n"] += 1
        if calls["n"] > shards_written:
            raise KeyboardInterrupt
        return original(self, shard, rows)

    monkeypatch.setattr(ShardWriter, "write", dying)
    plan = GenerationPlan(generator="cutpaste", category="brick", size=32, shard_size=4, num_samples=10, out=out)
    with pytest.raises(KeyboardInterrupt):
        run_plan(plan, progress=False)
    monkeypatch.setattr(ShardWriter, "write", original)
    return out


# --- data loss and security ---------------------------------------------------------------------------------

def test_overwrite_removes_only_what_synth_wrote(dataset, capsys):
    (dataset / "data" / "mine.txt").write_text("keep")
    (dataset / "notes.txt").write_text("keep too")
    (dataset / "data" / ".train-00001-of-00003.parquet.99999.tmp").write_bytes(b"stale")
    assert run_cli([*GEN, "-n", 6, "--seed", 3, "--out", dataset, "--overwrite"], capsys)[0] == 0
    assert (dataset / "data" / "mine.txt").read_text() == "keep"
    assert (dataset / "notes.txt").read_text() == "keep too"
    assert sorted(shard_bytes(dataset)) == ["train-00000-of-00002.parquet", "train-00001-of-00002.parquet"]
    assert not list((dataset / "data").glob(".*.tmp"))


def test_overwrite_refuses_a_directory_that_is_not_a_synth_dataset(tmp_path, capsys):
    out = tmp_path / "home"
    (out / "data").mkdir(parents=True)
    (out / "data" / "thesis.tex").write_text("precious")
    status, _, err = run_cli([*GEN, "-n", 2, "--out", out, "--overwrite"], capsys)
    assert one_line_error(status, err, "holds no synth dataset")
    assert (out / "data" / "thesis.tex").read_text() == "precious"


def test_publish_sends_only_the_manifests_files(dataset, tmp_path, capsys, monkeypatch):
    outside = tmp_path / "secret.txt"
    outside.write_text("private")
    (dataset / "passwd_link").symlink_to(outside)
    (dataset / "data" / "linked").symlink_to(tmp_path)
    (dataset / "notes.txt").write_text("stray")
    status, stdout, _ = run_cli(["publish", dataset, "--repo-id", "me/bricks", "--dry-run"], capsys)
    assert status == 0
    uploaded = [line for line in stdout.splitlines() if not line.startswith(("skipped", "would upload"))]
    assert uploaded == ["README.md", "data/train-00000-of-00003.parquet", "data/train-00001-of-00003.parquet",
                        "data/train-00002-of-00003.parquet", "manifest.json"]
    assert {"skipped passwd_link (a link)", "skipped notes.txt (not made by synth)",
            "skipped data/linked/ (a link)"} <= set(stdout.splitlines())
    # A real upload (Hub calls replaced) commits exactly these files.
    import huggingface_hub

    commits = []
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, *a, **k: None)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_commit",
                        lambda self, **k: commits.append([op.path_in_repo for op in k["operations"]]))
    assert run_cli(["publish", dataset, "--repo-id", "me/bricks"], capsys)[0] == 0
    assert commits == [uploaded]


def test_publish_refuses_a_shard_that_links_outside(dataset, tmp_path, capsys):
    shard = dataset / "data" / "train-00001-of-00003.parquet"
    moved = tmp_path / "elsewhere.parquet"
    shutil.move(shard, moved)
    shard.symlink_to(moved)
    status, _, err = run_cli(["publish", dataset, "--repo-id", "me/bricks", "--dry-run"], capsys)
    assert one_line_error(status, err, "outside")


def long_root(tmp_path: Path) -> Path:
    root = tmp_path / ("home-of-alice-" + "x" * 60) / "private" / "projects"
    root.mkdir(parents=True)
    return root


def test_no_local_path_in_a_dataset(tmp_path, capsys):
    root = long_root(tmp_path)
    rng = np.random.default_rng(0)
    for i in range(4):
        write_image(root / "mvtec" / "widget/train/good" / f"{i:03d}.png", noise_image(rng, 32))
        write_image(root / "dtd" / "images" / ("banded" if i % 2 else "dotted") / f"t{i}.jpg", noise_image(rng, 32))
    out = root / "sets" / "widget-draem"
    args = ["gen", "-g", "draem", "--data", root / "mvtec", "--category", "widget", "--textures", root / "dtd",
            "--size", "32", "-n", 4, "--shard-size", 2, "--out", out]
    assert run_cli(args, capsys)[0] == 0
    needles = {str(root).encode(), str(root.resolve()).encode(), str(tmp_path).encode(), b"home-of-alice"}
    for path in out.rglob("*"):
        if path.is_file():
            assert not any(needle in path.read_bytes() for needle in needles), path
    manifest = json.loads((out / "manifest.json").read_text())
    assert "--data '<mvtec root>'" in manifest["command"] and "--textures '<textures root>'" in manifest["command"]
    assert manifest["settings"]["textures"] == "<textures root>"
    assert manifest["generator_params"]["textures"] == "<textures root>"
    assert "github.com" not in (out / "README.md").read_text()
    rows = datasets.load_dataset(str(out), split="train")
    assert all(source.startswith("widget/train/good/") for source in rows["source"])
    assert all(texture.split("/")[0] in ("banded", "dotted") for texture in rows["texture"])


# --- one line instead of a traceback ---------------------------------------------------------------------------

def test_negative_seed_is_refused_and_leaves_nothing(tmp_path, capsys):
    status, _, err = run_cli([*GEN, "-n", 2, "--seed", -1, "--out", tmp_path / "o"], capsys)
    assert status == 2 and "--seed" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
    with pytest.raises(SynthError, match="--seed"):
        GenerationPlan(generator="cutpaste", category="brick", out=tmp_path / "o", num_samples=2, seed=-1)


def test_truncated_shard_is_one_line_for_resume_and_info(dataset, capsys):
    shard = dataset / "data" / "train-00001-of-00003.parquet"
    shard.write_bytes(shard.read_bytes()[:500])
    status, _, err = run_cli([*GEN, "-n", 10, "--out", dataset, "--resume"], capsys)
    assert one_line_error(status, err, "unreadable")
    status, _, err = run_cli(["info", dataset], capsys)
    assert one_line_error(status, err, "unreadable")


def test_broken_detector_weights_and_bad_settings(mvtec_tree, tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"detector": "patchcore", "config": {}}))
    from safetensors.torch import save_file
    import torch

    save_file({"bank": torch.zeros(64, 8)}, str(model / "model.safetensors"))
    whole = (model / "model.safetensors").read_bytes()
    for broken in (os.urandom(2000), whole[: len(whole) // 2]):
        (model / "model.safetensors").write_bytes(broken)
        status, err = detectors(["eval", "--model", model, "--data", mvtec_tree, "--category", "widget"], capsys)
        assert one_line_error(status, err, "not a readable safetensors file")
    status, err = detectors(["fit", "--detector", "patchcore", "--data", mvtec_tree, "--category", "widget",
                             "--set", "coreset_ratio=abc", "--out", tmp_path / "m"], capsys)
    assert one_line_error(status, err, "coreset_ratio")
    status, err = detectors(["bench", "--detectors", "realnet", "--data", mvtec_tree, "--category", "widget",
                             "--set", "realnet.smoothing=0", "--out", tmp_path / "b"], capsys)
    assert one_line_error(status, err, "smoothing=0: Input should be greater than or equal to 1")
    assert not (tmp_path / "b").exists()


def test_unreadable_training_images_one_line_each(tmp_path, caplog, capfd):
    root = tmp_path / "parts"
    rng = np.random.default_rng(0)
    for i in range(3):
        write_image(root / f"{i}.png", noise_image(rng, 32))
    (root / "junk.png").write_bytes(b"not a png")
    (root / "cut.png").write_bytes((root / "0.png").read_bytes()[:200])
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING, logger="synth"):
        warnings.simplefilter("error")  # no Python warning (two lines each)
        for _ in range(2):  # a run reads its category more than once: each file is still said once
            assert len(load_category(tmp_path, "parts", size=32)) == 3
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 3 and all("\n" not in line for line in lines)
    assert lines[0].startswith("skipping: cannot read image") and lines[0].endswith("cut.png")
    assert lines[1].endswith("junk.png") and lines[2].startswith("skipped 2 of 5 images")
    assert capfd.readouterr().err == ""  # nothing from OpenCV


# --- silently wrong -------------------------------------------------------------------------------------------

def test_resume_checks_each_shards_columns_and_rows(dataset, tmp_path, capsys, monkeypatch):
    other = tmp_path / "other"
    assert run_cli(["gen", "-g", "normal", "--category", "brick", "--size", "32", "--shard-size", "4", "-n", 4,
                    "--out", other], capsys)[0] == 0
    resumed = interrupted(tmp_path / "resumed", monkeypatch)
    shutil.copy(other / "data/train-00000-of-00001.parquet", resumed / "data/train-00001-of-00003.parquet")
    status, _, err = run_cli([*GEN, "-n", 10, "--out", resumed, "--resume"], capsys)
    assert one_line_error(status, err, "does not belong to this dataset")
    assert one_line_error(*run_cli(["info", resumed], capsys)[::2], "does not belong to this dataset")
    shutil.copy(dataset / "data/train-00002-of-00003.parquet", resumed / "data/train-00001-of-00003.parquet")
    status, _, err = run_cli([*GEN, "-n", 10, "--out", resumed, "--resume"], capsys)
    assert one_line_error(status, err, "holds 2 rows, not 4")
    (resumed / "data/train-00001-of-00003.parquet").unlink()
    shutil.copy(other / "data/train-00000-of-00001.parquet", resumed / "data")
    status, _, err = run_cli([*GEN, "-n", 10, "--out", resumed, "--resume"], capsys)
    assert one_line_error(status, err, "is not a shard of this dataset")


@pytest.mark.parametrize("args, message", [
    (["-g", "cutpaste", "--foreground", "bogus"], "--foreground"),
    (["-g", "cutpaste", "-o", "unknownkey=1"], "has no option unknownkey"),
    (["-g", "draem", "-o", "rotate_normal=true", "-o", "grid=4"], "has no option grid"),
    (["-g", "cutpaste", "--blend"], "has no option blend"),
    (["-g", "sdas", "--steps", "0"], "--steps"),
    (["-g", "strokes", "--contrast", "10:20"], "has no option target_contrast (--contrast)"),
    (["-g", "mix", "--mix", "strokes=1,cutpaste=1", "--contrast", "10:20"], "has no option target_contrast"),
])
def test_unknown_and_bogus_options_are_refused(tmp_path, capsys, args, message):
    out = tmp_path / "o"
    status, _, err = run_cli(["gen", "--category", "brick", "--size", "32", "-n", 2, *args, "--out", out], capsys)
    assert one_line_error(status, err, message)
    assert not (out / "manifest.json").exists()


def test_sdas_zero_steps_through_an_option_is_refused(tmp_path, capsys):
    status, _, err = run_cli(["gen", "-g", "sdas", "--category", "brick", "--size", "32", "-n", 2,
                              "-o", "steps=0", "--out", tmp_path / "o"], capsys)
    assert one_line_error(status, err, "steps")


def test_run_dry_run_checks_the_data_root(tmp_path, capsys):
    status, _, err = run_cli(["run", REPO / "recipes/sia-mvtec.toml", "--data", tmp_path / "nonexistent",
                              "--only", "bottle", "--models", tmp_path / "models", "--dry-run"], capsys)
    assert one_line_error(status, err, "does not exist")


def test_eval_refuses_a_mask_of_another_size(mvtec_tree):
    write_image(mvtec_tree / "widget/ground_truth/scratch/000_mask.png", np.zeros((20, 20), np.uint8))
    with pytest.raises(SynthError, match="mask .* is 20x20 but its image is 48x48"):
        bench.TestSet.from_category(load_category(mvtec_tree, "widget", size=32), ImageSize.square(32))


def test_incomplete_dataset_card_and_warning(tmp_path, monkeypatch, caplog):
    out = interrupted(tmp_path / "part", monkeypatch)
    assert "**Incomplete**" in (out / "README.md").read_text()
    with pytest.raises(datasets.exceptions.NonMatchingSplitsSizesError):
        datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "cache"))
    with caplog.at_level(logging.WARNING, logger="detectors"):
        load_training(load_category(None, "brick", size=32), [str(out)], 0.25, None)
    assert "is incomplete (1 of 3 shards written)" in caplog.text
    run_plan(GenerationPlan(generator="cutpaste", category="brick", size=32, shard_size=4, num_samples=10, out=out,
                            resume=True), progress=False)
    assert "Incomplete" not in (out / "README.md").read_text()
    assert datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "cache")).num_rows == 10


def test_eval_out_refuses_before_scoring(tmp_path, capsys, monkeypatch):
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval/metrics.json").write_text("{}")

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("detectors.cli.load_detector", never)
    status, err = detectors(["eval", "--model", tmp_path / "m", "--category", "brick", "--out", tmp_path / "eval"],
                            capsys)
    assert one_line_error(status, err, "already holds metrics")


def test_bench_out_refuses_a_directory_that_is_not_a_results_directory(tmp_path, capsys):
    out = tmp_path / "papers"
    out.mkdir()
    (out / "draft.md").write_text("mine")
    status, err = detectors(["bench", "--category", "brick", "--detectors", "patchcore", "--out", out], capsys)
    assert one_line_error(status, err, "not a results directory")
    assert (out / "draft.md").read_text() == "mine" and sorted(p.name for p in out.iterdir()) == ["draft.md"]


def test_resume_into_a_missing_directory_creates_nothing(tmp_path, capsys):
    status, _, err = run_cli([*GEN, "-n", 4, "--out", tmp_path / "missing", "--resume"], capsys)
    assert one_line_error(status, err, "does not exist")
    assert not (tmp_path / "missing").exists()


def test_resume_removes_a_killed_runs_temporary_shard(dataset, tmp_path, capsys, monkeypatch):
    out = interrupted(tmp_path / "part", monkeypatch)
    stale = out / "data" / ".train-00001-of-00003.parquet.4242.tmp"
    stale.write_bytes(b"half a shard")
    assert run_cli([*GEN, "-n", 10, "--out", out, "--resume"], capsys)[0] == 0
    assert not stale.exists()
    # the same dataset as an uninterrupted run: shards, and manifest and card but for the command line
    assert shard_bytes(out) == shard_bytes(dataset)
    resumed, clean = (json.loads((d / "manifest.json").read_text()) for d in (out, dataset))
    commands = resumed.pop("command"), clean.pop("command")
    assert commands[0].endswith("--resume") and resumed == clean
    cards = [(d / "README.md").read_text().replace(c, "") for d, c in zip((out, dataset), commands)]
    assert cards[0] == cards[1]


@pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate is not installed")
def test_accelerate_launch_starts_k_processes_on_a_cpu(tmp_path, capsys):
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() < 2:
        pytest.skip("two launched processes need two GPUs (or none)")
    args = ["--category", "brick", "--size", "32", "-g", "cutpaste", "--shard-size", "4", "-n", "10"]
    assert run_cli(["gen", *args, "--out", tmp_path / "one"], capsys)[0] == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HOME": str(tmp_path / "hf")}
    process = subprocess.run(["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "-m", "synth", "gen",
                              *args, "--out", str(tmp_path / "two")], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=900)
    assert process.returncode == 0, process.stderr[-2000:]
    assert "[0]" in process.stderr and "[1]" in process.stderr  # two processes wrote shards
    assert shard_bytes(tmp_path / "two") == shard_bytes(tmp_path / "one")


def test_resumed_training_checkpoint_has_the_uninterrupted_rng_state(tmp_path):
    import torch

    from synth.diffusion import TrainOptions, train

    def micro(out: Path, steps: int, resume: bool = False) -> TrainOptions:
        return TrainOptions(out=out, category="brick", preset="micro", steps=steps, checkpoint_every=2,
                            sample_every=100, sample_steps=2, num_samples=2, progress=False, resume=resume)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(micro(tmp_path / "whole", 4))
        train(micro(tmp_path / "split", 2))
        train(micro(tmp_path / "split", 4, resume=True))
    finally:
        torch.set_num_threads(threads)
    whole, split = (torch.load(tmp_path / name / "checkpoint.pt", weights_only=True) for name in ("whole", "split"))
    assert torch.equal(whole["rng"], split["rng"])


@pytest.mark.parametrize("args, message", [
    (["gen", "-g", "sdas", "--category", "brick", "--size", "32", "-n", 2, "--blend", "--delta", "abc"], "--delta"),
    (["gen", "-g", "sdas", "--category", "brick", "--size", "32", "-n", 2, "--blend", "--delta", "0.5:2"],
     "--delta must be at most 1"),
    (["gen", "-g", "sdas", "--category", "brick", "--size", "32", "-n", 2, "--s", "nan"], "--s must be a value"),
    (["train", "--preset", "micro", "--steps", 1, "--lr", -1], "--lr must be positive"),
    (["train", "--preset", "micro", "--steps", 1, "--batch-size", 0], "--batch-size must be at least 1"),
    (["train", "--preset", "micro", "--steps", 1, "--threads", 0], "--threads"),
    (["preview", "-g", "cutpaste", "--category", "brick", "--size", "32", "--tile", 0], "--tile"),
    (["preview", "-g", "cutpaste", "--category", "brick", "--size", "32", "--seed", -1], "--seed"),
])
def test_out_of_range_values_are_one_line_and_write_nothing(tmp_path, capsys, args, message):
    out = tmp_path / ("o.png" if args[0] == "preview" else "o")
    status, _, err = run_cli([*args, "--out", out], capsys)
    assert one_line_error(status, err, message)
    assert not out.exists()


def test_preview_out_must_be_a_png_file(tmp_path, capsys):
    for out in (tmp_path / "sheet.txt", tmp_path):
        status, _, err = run_cli(["preview", "-g", "cutpaste", "--category", "brick", "--size", "32", "-n", 1,
                                  "--out", out, "--overwrite"], capsys)
        assert one_line_error(status, err, "expected a .png file path")


@pytest.mark.parametrize("args, message", [(["-o", "typo=1"], "has no option typo"), (["--s", "0.2"], "does not use --s")])
def test_preview_refuses_options_the_generator_does_not_use(tmp_path, capsys, args, message):
    out = tmp_path / "sheet.png"
    status, _, err = run_cli(["preview", "-g", "cutpaste", "--category", "brick", "--size", "32", "-n", 1,
                              *args, "--out", out], capsys)
    assert one_line_error(status, err, message)
    assert not out.exists()


@pytest.mark.parametrize("manifest", [[], {"tool": "other", "num_shards": 0}, {"format": "synth-dataset/1"}])
def test_a_manifest_synth_did_not_write_is_not_a_synth_dataset(tmp_path, capsys, manifest):
    out = tmp_path / "theirs"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / "README.md").write_text("their card")
    status, _, err = run_cli(["info", out], capsys)
    assert status == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    status, _, err = run_cli([*GEN, "-n", 2, "--out", out, "--overwrite"], capsys)
    assert one_line_error(status, err, "holds no synth dataset")
    assert (out / "README.md").read_text() == "their card"


def test_train_overwrite_refuses_a_directory_without_a_synth_model(tmp_path, capsys):
    out = tmp_path / "work"
    (out / "samples").mkdir(parents=True)
    (out / "samples" / "mine.txt").write_text("keep")
    (out / "README.md").write_text("mine")
    status, _, err = run_cli(["train", "--preset", "micro", "--steps", 1, "--out", out, "--overwrite"], capsys)
    assert one_line_error(status, err, "holds no synth model")
    assert (out / "samples" / "mine.txt").read_text() == "keep" and (out / "README.md").read_text() == "mine"


def test_visa_table_with_absolute_paths_is_one_line(tmp_path, capsys):
    root = tmp_path / "visa"
    image = write_image(tmp_path / "elsewhere" / "000.png", noise_image(np.random.default_rng(0), 32))
    (root / "split_csv").mkdir(parents=True)
    (root / "split_csv" / "1cls.csv").write_text(f"object,split,label,image,mask\nwidget,train,normal,{image},\n")
    status, _, err = run_cli([*GEN[:2], "cutpaste", "--data", root, "--category", "widget", "--size", "32", "-n", 2,
                              "--out", tmp_path / "o"], capsys)
    assert one_line_error(status, err, "absolute path")


@pytest.mark.parametrize("args, message", [
    (["fit", "--detector", "patchcore", "--set", "strides=[3]"], "no feature tap at stride 3"),
    (["fit", "--detector", "patchcore", "--set", "strides=[]"], "no feature tap"),
    (["fit", "--detector", "simplenet", "--set", "hidden=-1"], "hidden=-1"),
    (["bench", "--detectors", ""], "names no detector"),
])
def test_bad_detector_settings_are_one_line(mvtec_tree, tmp_path, capsys, args, message):
    status, err = detectors([*args, "--data", mvtec_tree, "--category", "widget", "--out", tmp_path / "m"], capsys)
    assert one_line_error(status, err, message)
    assert not (tmp_path / "m").exists()


def test_detector_out_that_is_a_file_is_refused_before_fitting(mvtec_tree, tmp_path, capsys, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("fitted or scored")

    monkeypatch.setattr("detectors.cli.fit_detector", never)
    monkeypatch.setattr("detectors.cli.load_detector", never)
    taken = tmp_path / "taken.txt"
    taken.write_text("mine")
    for args in (["fit", "--detector", "patchcore"], ["eval", "--model", tmp_path / "m"]):
        status, err = detectors([*args, "--data", mvtec_tree, "--category", "widget", "--out", taken], capsys)
        assert one_line_error(status, err, "exists and is not a directory")
    assert taken.read_text() == "mine"


def test_backbone_weights_of_another_network_are_one_line(mvtec_tree, tmp_path, capsys):
    from safetensors.torch import save_file
    import torch

    weights = tmp_path / "other.safetensors"
    save_file({"conv.weight": torch.zeros(4, 3, 3, 3)}, str(weights))
    status, err = detectors(["fit", "--detector", "patchcore", "--data", mvtec_tree, "--category", "widget",
                             "--weights", weights, "--out", tmp_path / "m"], capsys)
    assert one_line_error(status, err, "do not fit this backbone")


def test_bench_and_eval_results_hold_no_local_path(mvtec_tree, tmp_path, capsys):
    out = tmp_path / "bench"
    status, err = detectors(["bench", "--detectors", "patchcore", "--data", mvtec_tree, "--category", "widget",
                             "--size", 32, "--overlays", 0, "--out", out], capsys)
    assert status == 0, err
    model = tmp_path / "model"
    assert detectors(["fit", "--detector", "patchcore", "--data", mvtec_tree, "--category", "widget", "--size", 32,
                      "--out", model], capsys)[0] == 0
    assert detectors(["eval", "--model", model, "--data", mvtec_tree, "--category", "widget", "--overlays", 0,
                      "--out", tmp_path / "eval"], capsys)[0] == 0
    for path in (out / "results.json", out / "results.md", tmp_path / "eval" / "metrics.json"):
        assert str(tmp_path) not in path.read_text(), path
    assert json.loads((out / "results.json").read_text())["data"] == "<mvtec root>"
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["model"] == "<local path>"
