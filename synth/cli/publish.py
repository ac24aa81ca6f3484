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
    """Upload DIRECTORY's dataset (the card, manifest and shards it lists; nothing else) as a Hub dataset."""
    plan = publish(directory, repo_id, private=private, dry_run=dry_run)
    for name in plan.files:
        click.echo(name)
    for name, reason in plan.skipped:
        click.echo(f"skipped {name} ({reason})")
    verb = "would upload" if dry_run else "uploaded"
    click.echo(f"{verb} {len(plan.files)} files ({plan.num_bytes / 1e6:.1f} MB) to "
               f"https://huggingface.co/datasets/{repo_id}" + (f"; skipped {len(plan.skipped)}" if plan.skipped else ""))
