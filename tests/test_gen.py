"""`synth gen` end to end: shards, determinism, resume, `load_dataset` round trip and bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest

from synth.data import load_category
from synth.errors import SynthError
from synth.pipeline.plan import GenerationPlan, run_plan
from synth.pipeline.strength import parse_strength
from synth.shards import ShardWriter
from tests.conftest import real_data, run_cli

GEN = ["gen", "--generator", "cutpaste-union", "--category", "brick", "--size", "32", "--shard-size", "8"]


def shard_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "data").glob("*.parquet"))}


def test_gen_writes_loadable_shards(tmp_path, capsys):
    out = tmp_path / "out"
    status, stdout, _ = run_cli([*GEN, "-n", 20, "--out", out], capsys)
    assert status == 0 and "wrote 20" in stdout
    assert sorted(shard_bytes(out)) == [f"train-0000{k}-of-00003.parquet" for k in range(3)]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["num_rows"] == 20 and manifest["generator"] == "cutpaste-union"
    ds = datasets.load_dataset(str(out), split="train")
    assert ds.num_rows == 20 and ds["index"] == list(range(20))
    brick = load_category(None, "brick", size=32)
    ids = brick.train_ids
    for row in ds.select(range(5)):
        image, mask = np.asarray(row["image"]), np.asarray(row["mask"])
        source = brick.train_images[ids.index(row["source"])]
        assert image.shape == (32, 32, 3) and mask.shape == (32, 32) and mask.any()
        changed = (image != source).any(axis=2)
        assert not (changed & (mask == 0)).any()
        assert row["variant"] in ("cutpaste", "scar")


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path, capsys):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        assert run_cli([*GEN, "-n", 12, "--seed", seed, "--out", tmp_path / name], capsys)[0] == 0
    assert shard_bytes(tmp_path / "a") == shard_bytes(tmp_path / "b")
    assert shard_bytes(tmp_path / "a") != shard_bytes(tmp_path / "c")


def test_batch_size_and_processes_do_not_change_the_data(tmp_path, capsys):
    assert run_cli([*GEN, "-n", 24, "--batch-size", 1, "--out", tmp_path / "a"], capsys)[0] == 0
    assert run_cli([*GEN, "-n", 24, "--batch-size", 5, "--num-processes", 2, "--out", tmp_path / "b"], capsys)[0] == 0
    assert shard_bytes(tmp_path / "a") == shard_bytes(tmp_path / "b")


def test_interrupted_then_resumed_equals_clean_run(tmp_path, monkeypatch, capsys):
    assert run_cli([*GEN, "-n", 30, "--out", tmp_path / "clean"], capsys)[0] == 0
    original_write = ShardWriter.write
    calls = {"n": 0}

    def dying_write(self, shard, rows):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original_write(self, shard, rows)

    monkeypatch.setattr(ShardWriter, "write", dying_write)
    plan = GenerationPlan(generator="cutpaste-union", category="brick", size=32, shard_size=8,
                          num_samples=30, out=tmp_path / "resumed")
    with pytest.raises(KeyboardInterrupt):
        run_plan(plan, progress=False)
    assert len(shard_bytes(tmp_path / "resumed")) == 2
    assert not json.loads((tmp_path / "resumed/manifest.json").read_text())["complete"]
    monkeypatch.setattr(ShardWriter, "write", original_write)
    status, _, err = run_cli([*GEN, "-n", 30, "--out", tmp_path / "resumed"], capsys)
    assert status == 2 and "--resume" in err
    assert run_cli([*GEN, "-n", 30, "--out", tmp_path / "resumed", "--resume"], capsys)[0] == 0
    assert shard_bytes(tmp_path / "resumed") == shard_bytes(tmp_path / "clean")
    assert json.loads((tmp_path / "resumed/manifest.json").read_text())["complete"]


def test_resume_refuses_different_settings_and_overwrite_replaces(tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli([*GEN, "-n", 10, "--out", out], capsys)[0] == 0
    before = shard_bytes(out)
    status, _, err = run_cli([*GEN, "-n", 10, "--seed", 9, "--out", out, "--resume"], capsys)
    assert status == 2 and "different seed" in err
    assert shard_bytes(out) == before
    assert run_cli([*GEN, "-n", 10, "--seed", 9, "--out", out, "--overwrite"], capsys)[0] == 0
    assert shard_bytes(out) != before and len(shard_bytes(out)) == 2


def test_default_output_directory_is_named_after_category_and_generator(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_cli(["gen", "--generator", "cutpaste", "--category", "brick", "--size", "32", "-n", 3], capsys)[0] == 0
    assert (tmp_path / "brick-cutpaste" / "manifest.json").is_file()


@pytest.mark.parametrize("args, message", [
    (["--data", "/nonexistent/root"], "does not exist"),
    (["--category", "nosuch"], "unknown category"),
    (["--generator", "nosuch"], "unknown generator"),
    (["--layout", "weird", "--data", "."], "unknown layout"),
    (["--s", "0.2:0.1"], "inverted"),
    (["--s", "-0.1"], "negative"),
    (["--s", "abc"], "--s must be"),
    (["-n", "0"], "-n must be positive"),
    (["-n", "-5"], "-n must be positive"),
])
def test_bad_input_one_line_exit_2(tmp_path, capsys, args, message):
    base = ["gen", "--generator", "cutpaste", "--category", "brick", "--size", "32", "-n", "2", "--out", tmp_path / "o"]
    status, _, err = run_cli([*base, *args], capsys)
    assert status == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_unwritable_output_directory(tmp_path, capsys):
    if os.geteuid() == 0:
        target = Path("/proc/synth-cannot-write")
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        target = locked / "out"
    status, _, err = run_cli([*GEN, "-n", 2, "--out", target], capsys)
    assert status == 2 and "output directory" in err and len(err.strip().splitlines()) == 1


def test_existing_files_are_kept_without_overwrite(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    status, _, err = run_cli([*GEN, "-n", 2, "--out", out], capsys)
    assert status == 2 and "not empty" in err
    assert (out / "precious.txt").read_text() == "keep me"


def test_parse_strength():
    assert parse_strength("0.15") == (0.15, 0.15)
    assert parse_strength("0.1:0.2") == (0.1, 0.2)
    with pytest.raises(SynthError):
        parse_strength("0.1:0.2:0.3")


def test_info_and_preview(tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli([*GEN, "-n", 9, "--out", out], capsys)[0] == 0
    status, stdout, _ = run_cli(["info", out], capsys)
    assert status == 0 and "rows: 9" in stdout and "cutpaste-union" in stdout
    sheet = tmp_path / "sheet.png"
    status, _, _ = run_cli(["preview", "--generator", "cutpaste", "--size", "32", "-n", 3, "--tile", 32, "--out", sheet], capsys)
    assert status == 0 and sheet.stat().st_size > 0
    status, _, err = run_cli(["preview", "--generator", "cutpaste", "--out", sheet], capsys)
    assert status == 2 and "--overwrite" in err
    status, _, err = run_cli(["info", tmp_path / "nothing"], capsys)
    assert status == 2


def test_real_mpdd_cutpaste_union(tmp_path, capsys):
    data = real_data("mpdd")
    out = tmp_path / "plate"
    args = ["gen", "--generator", "cutpaste-union", "--data", data, "--category", "metal_plate", "--size", "64",
            "-n", 20, "--out", out]
    assert run_cli(args, capsys)[0] == 0
    table = pq.read_table(out / "data")
    assert table.num_rows == 20 and set(table["category"].to_pylist()) == {"metal_plate"}


def test_publish_dry_run_and_missing_token(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert run_cli([*GEN, "-n", 10, "--out", out], capsys)[0] == 0
    status, stdout, _ = run_cli(["publish", out, "--repo-id", "me/bricks", "--dry-run"], capsys)
    listed = stdout.splitlines()
    assert status == 0
    assert listed[:4] == ["README.md", "data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet",
                          "manifest.json"]
    assert "would upload 4 files" in listed[-1]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    status, _, err = run_cli(["publish", out, "--repo-id", "me/bricks"], capsys)
    assert status == 2 and "token" in err and len(err.strip().splitlines()) == 1
    status, _, err = run_cli(["publish", tmp_path, "--repo-id", "me/bricks", "--dry-run"], capsys)
    assert status == 2 and "not a synth dataset" in err


def test_publish_without_network_is_one_line(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert run_cli([*GEN, "-n", 3, "--out", out], capsys)[0] == 0
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    status, _, err = run_cli(["publish", out, "--repo-id", "me/bricks"], capsys)
    assert status == 2 and "upload to me/bricks failed" in err and len(err.strip().splitlines()) == 1
