"""Shared fixtures: tiny dataset trees made on the fly and the optional real data."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest

from synth.cli import main

SHARED_DATA = Path(os.environ.get("SYNTH_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def no_strength_response(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trainings in tests skip the strength response (12 x 32 samples of 20 steps: ~15 s on a micro model),
    except in tests marked ``strength_response``."""
    if request.node.get_closest_marker("strength_response") is None:
        monkeypatch.setattr("synth.quality.response.save_responses", lambda *args, **kwargs: {})
        monkeypatch.setattr("synth.quality.response.response_markdown", lambda responses: "")


def load_benchmark(name: str, module_name: str) -> ModuleType:
    """The script benchmarks/NAME.py as module ``module_name`` (benchmarks/ is not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def real_data(*parts: str) -> Path:
    """A folder of the optional real data; skips the test when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available at {path}")
    return path


def write_image(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 and image.shape[2] == 3 else image
    assert cv2.imwrite(str(path), array)
    return path


def noise_image(rng: np.random.Generator, size: int = 48) -> np.ndarray:
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


@pytest.fixture
def mvtec_tree(tmp_path: Path) -> Path:
    """ROOT/widget in the MVTec AD layout: 6 normal, 2 good + 2 defective test images with masks."""
    rng = np.random.default_rng(1)
    root = tmp_path / "mvtec"
    for i in range(6):
        write_image(root / "widget/train/good" / f"{i:03d}.png", noise_image(rng))
    for i in range(2):
        write_image(root / "widget/test/good" / f"{i:03d}.png", noise_image(rng))
        write_image(root / "widget/test/scratch" / f"{i:03d}.png", noise_image(rng))
        mask = np.zeros((48, 48), np.uint8)
        mask[10:20, 10:30] = 255
        write_image(root / "widget/ground_truth/scratch" / f"{i:03d}_mask.png", mask)
    return root


def run_cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """Run `synth ARGS`; return (exit status, stdout, stderr)."""
    try:
        main([str(a) for a in args])
        status = 0
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else 1
    captured = capsys.readouterr()
    return status, captured.out, captured.err
