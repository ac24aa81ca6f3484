"""Publishing a dataset directory to the Hugging Face Hub: exactly the files synth made, nothing else.

The files to send come from the manifest (card, manifest, its shards); each must be a file inside the
directory (a link that leads out of it is refused), and every other entry of the directory (a stray
file, a link, a folder) is skipped and listed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from synth.errors import SynthError
from synth.shards.card import CARD, dataset_files, read_manifest, verify_dataset

LARGE_FOLDER_BYTES = 5 * 1024**3  # above this, huggingface_hub's resumable large-folder upload
LARGE_FOLDER_FILES = 100


@dataclass
class UploadPlan:
    """The files to upload (relative POSIX paths) and the skipped entries with the reason."""

    directory: Path
    files: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def num_bytes(self) -> int:
        return sum((self.directory / name).stat().st_size for name in self.files)


def is_inside(path: Path, directory: Path) -> bool:
    """Whether ``path``, with every link followed, lies inside ``directory``."""
    return path.resolve().is_relative_to(directory.resolve())


def other_entries(directory: Path, keep: set[str]) -> list[tuple[str, str]]:
    """Entries of ``directory`` that are not in ``keep``, with why they are left out; links are not
    followed and a folder that holds nothing of ``keep`` is one entry (``name/``)."""
    found: list[tuple[str, str]] = []
    for root, folders, names in os.walk(directory):
        base = Path(root).relative_to(directory)
        for name in sorted(folders):
            relative = (base / name).as_posix()
            if Path(root, name).is_symlink() or not any(k.startswith(relative + "/") for k in keep):
                found.append((relative + "/", _reason(Path(root, name))))
                folders.remove(name)
        found += [((base / name).as_posix(), _reason(Path(root, name))) for name in names
                  if (base / name).as_posix() not in keep]
    return sorted(found)


def _reason(path: Path) -> str:
    return "a link" if path.is_symlink() else "not made by synth"


def upload_plan(directory: Path) -> UploadPlan:
    """What `synth publish` sends from a finished dataset directory, and what it leaves out."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    if manifest is None or not (directory / CARD).is_file():
        raise SynthError(f"{directory} is not a synth dataset (manifest.json or README.md missing)")
    if not manifest.get("complete"):
        raise SynthError(f"{directory} is incomplete; finish it with `synth gen ... --resume` first")
    files = sorted(dataset_files(manifest))
    for name in files:
        path = directory / name
        if not path.is_file():
            raise SynthError(f"{path} is missing; the dataset is damaged: regenerate it")
        if not is_inside(path, directory):
            raise SynthError(f"{path} is a link to a file outside {directory}; synth uploads nothing from outside")
    verify_dataset(directory, manifest)
    return UploadPlan(directory, files, other_entries(directory, set(files)))


def publish(directory: Path, repo_id: str, private: bool = False, dry_run: bool = False,
            token: str | None = None) -> UploadPlan:
    """Upload the dataset in ``directory`` as the dataset repo ``repo_id``; with ``dry_run`` only plan it."""
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise SynthError(f"--repo-id must look like USER/NAME, got {repo_id!r}")
    plan = upload_plan(directory)
    if dry_run:
        return plan
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.utils import get_token

    token = token or os.environ.get("HF_TOKEN") or get_token()
    if not token:
        raise SynthError("no Hugging Face token: run `hf auth login` or set HF_TOKEN")
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if plan.num_bytes > LARGE_FOLDER_BYTES or len(plan.files) > LARGE_FOLDER_FILES:
            api.upload_large_folder(repo_id=repo_id, folder_path=str(directory), repo_type="dataset",
                                    private=private, allow_patterns=plan.files)
        else:
            operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(Path(directory) / name))
                          for name in plan.files]
            api.create_commit(repo_id=repo_id, repo_type="dataset", operations=operations,
                              commit_message="Upload synth dataset")
    except Exception as error:  # network, auth, quota: one line for the user
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SynthError(f"upload to {repo_id} failed: {message}") from None
    return plan
