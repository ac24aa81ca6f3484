"""Provenance: commands with roles instead of local paths, portable model ids."""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path

from synth.pipeline.provenance import model_id, model_provenance, path_roles, portable_command, portable_value


def test_portable_command_names_roles_instead_of_paths(tmp_path):
    data, textures = tmp_path / "home/alice/mvtec", tmp_path / "home/alice/dtd"
    data.mkdir(parents=True)
    argv = ["synth", "gen", "--data", str(data), "--category", "bottle", f"--textures={textures}",
            "--model", "me/bottle-ddpm", "--out", "/home/alice/sets/bottle", "-o", f"extra={tmp_path}/x", "-n", "8"]
    command = portable_command(argv, path_roles("mvtec"))
    assert str(tmp_path) not in command and "alice" not in command
    assert shlex.split(command) == ["synth", "gen", "--data", "<mvtec root>", "--category", "bottle",
                                    "--textures=<textures root>", "--model", "me/bottle-ddpm", "--out",
                                    "<output dir>", "-o", "extra=<local path>", "-n", "8"]


def test_portable_value_replaces_paths_inside_structures(tmp_path):
    paths = {tmp_path / "dtd": "textures root"}
    value = {"textures": str(tmp_path / "dtd"), "ids": [str(tmp_path / "dtd/images/a.jpg"), "banded/b.jpg"],
             "other": "/srv/private/file", "n": 3, "none": None}
    assert portable_value(value, paths) == {"textures": "<textures root>", "ids": ["<textures root>/images/a.jpg",
                                            "banded/b.jpg"], "other": "<local path>", "n": 3, "none": None}


def test_model_ids_and_sha256(tmp_path):
    from synth.diffusion.models import bundled_models

    bundled = bundled_models()["brick"]
    provenance = model_provenance(bundled)
    weights = bundled / "diffusion_pytorch_model.safetensors"
    assert provenance == {"id": "synth/brick-tiny", "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}
    snapshot = tmp_path / "hub" / "models--me--bottle-ddpm" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    assert model_id(snapshot) == "me/bottle-ddpm"
    assert model_id(tmp_path / "models" / "bottle") == "bottle"
    (snapshot / "diffusion_pytorch_model.safetensors").write_bytes(b"weights")
    assert model_provenance(snapshot)["sha256"] == hashlib.sha256(b"weights").hexdigest()
    assert str(tmp_path) not in str(model_provenance(Path(snapshot)))
