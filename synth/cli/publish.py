"""`synth publish`: upload a dataset directory to the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path

import click

from synth.shards.publish import publish


@click.command("publish")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--repo-id", required=True, help="Dataset repository, USER/NAME.")
@click.option("--private", is_flag=True, help="Create the repository as private.")
@click.option("--dry-run", is_flag=True, help="List what would be uploaded; upload nothing.")
def command(directory: Path, repo_id: str, private: bool, dry_run: bool) -> None:
    """Upload DIRECTORY (shards, dataset card, manifest) as a Hub dataset."""
    files = publish(directory, repo_id, private=private, dry_run=dry_run)
    for name in files:
        click.echo(str(name))
    size = sum((directory / f).stat().st_size for f in files)
    verb = "would upload" if dry_run else "uploaded"
    click.echo(f"{verb} {len(files)} files ({size / 1e6:.1f} MB) to https://huggingface.co/datasets/{repo_id}")
