"""Readers for the dataset layouts in use: MVTec AD (and MPDD), BTAD, VisA and a plain folder."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

from synth.data.category import Category, TestItem
from synth.data.images import list_images, read_many
from synth.data.size import ImageSize
from synth.errors import SynthError

LAYOUTS = ("mvtec", "btad", "visa", "folder")


def _mask_for(gt_dir: Path, stem: str) -> Path | None:
    for name in (f"{stem}_mask", stem):
        for suffix in (".png", ".bmp", ".jpg", ".tif"):
            candidate = gt_dir / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def _read_split_tree(root: Path, category: str, size: ImageSize, normal: str, layout: str) -> Category:
    base = root / category
    train_paths = list_images(base / "train" / normal)
    if not train_paths:
        raise SynthError(f"no normal training images in {base / 'train' / normal}")
    images, kept = read_many(train_paths, size, str(base / "train" / normal))
    test: list[TestItem] = []
    test_dir = base / "test"
    for defect_dir in sorted(p for p in test_dir.iterdir() if p.is_dir()) if test_dir.is_dir() else []:
        label = 0 if defect_dir.name == normal else 1
        for path in list_images(defect_dir):
            mask = _mask_for(base / "ground_truth" / defect_dir.name, path.stem) if label else None
            test.append(TestItem(path, label, defect_dir.name, mask))
    ids = [str(p.relative_to(root)) for p in kept]
    return Category(category, size, images, ids, test, layout, root)


def read_mvtec(root: Path, category: str, size: ImageSize) -> Category:
    """MVTec AD / MPDD: CATEGORY/train/good, test/<defect>, ground_truth/<defect>/<stem>_mask.png."""
    return _read_split_tree(root, category, size, "good", "mvtec")


def read_btad(root: Path, category: str, size: ImageSize) -> Category:
    """BTAD: CATEGORY/train/ok, test/{ok,ko}, ground_truth/ko/<stem>.(png|bmp)."""
    return _read_split_tree(root, category, size, "ok", "btad")


def read_visa(root: Path, category: str, size: ImageSize) -> Category:
    """VisA: split_csv/1cls.csv with columns object, split, label, image, mask (paths relative to ROOT)."""
    table = root / "split_csv" / "1cls.csv"
    with open(table, newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["object"] == category]
    if not rows:
        raise SynthError(f"category {category!r} is not in {table}")
    absolute = next((path for r in rows for path in (r["image"], r.get("mask") or "") if Path(path).is_absolute()), None)
    if absolute:
        raise SynthError(f"{table} lists an absolute path ({Path(absolute).name}); VisA's paths are relative to its root")
    train_paths = [root / r["image"] for r in rows if r["split"] == "train" and r["label"] == "normal"]
    images, kept = read_many(train_paths, size, f"{table} (train, {category})")
    test = [
        TestItem(root / r["image"], int(r["label"] != "normal"), r["label"],
                 root / r["mask"] if r.get("mask") else None)
        for r in rows if r["split"] == "test"
    ]
    return Category(category, size, images, [str(p.relative_to(root)) for p in kept], test, "visa", root)


def read_folder(root: Path, category: str, size: ImageSize) -> Category:
    """A plain folder of normal images: ROOT/CATEGORY if it exists, else ROOT itself."""
    folder = root / category if (root / category).is_dir() else root
    paths = list_images(folder)
    if not paths:
        raise SynthError(f"no images in {folder}")
    images, kept = read_many(paths, size, str(folder))
    return Category(category or folder.name, size, images, [str(p.relative_to(root)) for p in kept],
                    [], "folder", root)


READERS: dict[str, Callable[[Path, str, int], Category]] = {
    "mvtec": read_mvtec, "btad": read_btad, "visa": read_visa, "folder": read_folder,
}


def detect_layout(root: Path, category: str) -> str:
    """Guess the layout of ``root`` for ``category``."""
    if (root / "split_csv" / "1cls.csv").is_file():
        return "visa"
    if (root / category / "train" / "good").is_dir():
        return "mvtec"
    if (root / category / "train" / "ok").is_dir():
        return "btad"
    if list_images(root / category) or list_images(root):
        return "folder"
    available = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    hint = f"; categories found: {', '.join(available)}" if available else ""
    if (root / "train").is_dir():  # --data names the category folder itself
        hint = f"; {root} looks like a category folder: pass its parent, --data {root.parent} --category {root.name}"
    raise SynthError(f"category {category!r} not found under {root}{hint}")


LICENSE_FILES = ("license.txt", "LICENSE.txt", "LICENSE", "license.md", "LICENSE.md")


def license_note(root: Path | None, category: str) -> str:
    """The first line of a licence file beside the category (or at the root), for dataset cards."""
    if root is None:
        return "scikit-image sample data (see skimage.data for each photo's licence)"
    for folder in (root / category, root):
        for name in LICENSE_FILES:
            path = folder / name
            if path.is_file():
                lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
                if lines:
                    return f"{lines[0]} (from {path.name})"
    return "unknown: check the source dataset's licence"
