"""Finding a trained model: an explicit directory or Hub id, a category under a models root, or a
model bundled with the package."""

from __future__ import annotations

import os
from pathlib import Path

from synth.data import BUILTIN_CATEGORIES
from synth.diffusion.model import CONFIG_NAME, ModelConfig
from synth.errors import SynthError
from synth.hub import is_hub_id

MODELS_ENV = "SYNTH_MODELS"
DEFAULT_MODELS_ROOT = Path("models")
BUNDLED_ROOT = Path(__file__).resolve().parents[1] / "assets" / "models"
BUNDLED_PREFIX = "synth/"  # a bundled model's id in rows and manifests: synth/<directory>, e.g. synth/bottle-compact


def models_root(root: str | Path | None = None) -> Path:
    """The models root: ``root`` if given, else $SYNTH_MODELS, else ./models."""
    return Path(root or os.environ.get(MODELS_ENV) or DEFAULT_MODELS_ROOT)


WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"


def _is_model(directory: Path) -> bool:
    """A finished model: its synth config and its weights (a run in progress has no weights yet)."""
    return (directory / CONFIG_NAME).is_file() and (directory / WEIGHTS_NAME).is_file()


def _from_hub(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id))
    except Exception as error:  # network, auth or missing repo: all the same to the user
        raise SynthError(f"cannot fetch model {repo_id!r} from the Hugging Face Hub: "
                         f"{str(error).splitlines()[0] if str(error) else type(error).__name__}") from None


def bundled_models() -> dict[str, Path]:
    """The demo models shipped inside the package, by category."""
    found: dict[str, Path] = {}
    for directory in sorted(BUNDLED_ROOT.iterdir()) if BUNDLED_ROOT.is_dir() else []:
        if _is_model(directory):
            for name in ModelConfig.read(directory).class_names:
                found.setdefault(name, directory)
    return found


def find_model(category: str, model: str | Path | None = None, root: str | Path | None = None) -> Path:
    """The directory of the model to sample ``category`` from.

    Order: ``model`` (a directory, a bundled model's id ``synth/<name>`` as rows record it, or a Hub id
    ``user/name``); ``ROOT/CATEGORY`` under the models root; the bundled demo model of the category.
    """
    if model:
        path = Path(model)
        if path.is_dir():
            if not _is_model(path):
                raise SynthError(f"{path} holds no finished synth model ({CONFIG_NAME} or {WEIGHTS_NAME} missing)")
            return path
        if path.exists():
            raise SynthError(f"model {model} is a file; pass the model's directory")
        bundled = BUNDLED_ROOT / str(model).removeprefix(BUNDLED_PREFIX)
        if str(model).startswith(BUNDLED_PREFIX) and _is_model(bundled):
            return bundled
        if not is_hub_id(model):
            raise SynthError(f"model {model} does not exist")
        return _from_hub(str(model))
    candidate = models_root(root) / category
    if _is_model(candidate):
        return candidate
    bundled = bundled_models().get(category)
    if bundled is not None:
        return bundled
    data = "" if category in BUILTIN_CATEGORIES else "--data DATA_ROOT "
    raise SynthError(f"no diffusion model for category {category!r} in {models_root(root)} or bundled "
                     f"({', '.join(bundled_models()) or 'none'}); train one with `synth train {data}--category "
                     f"{category} --preset tiny --steps 4000 --out {candidate}` (DATA_ROOT: the dataset root, "
                     "e.g. MVTec AD) or pass --model DIR")
