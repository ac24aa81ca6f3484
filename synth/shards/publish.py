"""Publishing a dataset directory to the Hugging Face Hub."""

from __future__ import annotations

import os
from pathlib import Path

from synth.errors import SynthError
from synth.shards.card import CARD, read_manifest

LARGE_FOLDER_BYTES = 5 * 1024**3  # above this, huggingface_hub's resumable large-folder upload
LARGE_FOLDER_FILES = 100


def files_to_upload(directory: Path) -> list[Path]:
    """The files of a finished dataset directory, relative to it (hidden files left out)."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    if manifest is None or not (directory / CARD).is_file():
        raise SynthError(f"{directory} is not a synth dataset (manifest.json or README.md missing)")
    if not manifest.get("complete"):
        raise SynthError(f"{directory} is incomplete; finish it with `synth gen ... --resume` first")
    return sorted(p.relative_to(directory) for p in directory.rglob("*")
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(directory).parts))


def publish(directory: Path, repo_id: str, private: bool = False, dry_run: bool = False,
            token: str | None = None) -> list[Path]:
    """Upload ``directory`` as the dataset repo ``repo_id``; with ``dry_run`` only list the files."""
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise SynthError(f"--repo-id must look like USER/NAME, got {repo_id!r}")
    files = files_to_upload(directory)
    if dry_run:
        return files
    from huggingface_hub import HfApi
    from huggingface_hub.utils import get_token

    token = token or os.environ.get("HF_TOKEN") or get_token()
    if not token:
        raise SynthError("no Hugging Face token: run `hf auth login` or set HF_TOKEN")
    api = HfApi(token=token)
    size = sum((Path(directory) / f).stat().st_size for f in files)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if size > LARGE_FOLDER_BYTES or len(files) > LARGE_FOLDER_FILES:
            api.upload_large_folder(repo_id=repo_id, folder_path=str(directory), repo_type="dataset",
                                    private=private, ignore_patterns=[".*", "**/.*"])
        else:
            api.upload_folder(repo_id=repo_id, folder_path=str(directory), repo_type="dataset",
                              ignore_patterns=[".*", "**/.*"], commit_message="Upload synth dataset")
    except Exception as error:  # network, auth, quota: one line for the user
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SynthError(f"upload to {repo_id} failed: {message}") from None
    return files
