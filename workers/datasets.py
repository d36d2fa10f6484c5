"""Datasets that ship inside scikit-learn, split into train/val/test arrays on disk.

A prepared work directory holds ``train.npz``, ``val.npz`` and ``test.npz`` (arrays ``X`` and
``y``) and ``manifest.json``, written last, so a directory with a manifest is complete.
Jobs pass the directory's path, never the arrays.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import datasets
from sklearn.model_selection import train_test_split

MANIFEST = "manifest.json"
SPLITS = ("train", "val", "test")
LOADERS: dict[str, Callable[..., Any]] = {
    "digits": datasets.load_digits,
    "iris": datasets.load_iris,
    "wine": datasets.load_wine,
    "breast_cancer": datasets.load_breast_cancer,
}


@dataclass
class Split:
    """One split's features ``X`` and labels ``y``."""

    X: np.ndarray
    y: np.ndarray


def prepare(
    name: str, work_dir: Path, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, Any]:
    """Load bundled dataset ``name``, split it stratified, write the splits and return the manifest."""
    bunch = LOADERS[name]()
    X, y = bunch.data.astype(np.float32), bunch.target.astype(np.int64)
    rest_X, test_X, rest_y, test_y = train_test_split(
        X, y, test_size=test_fraction, stratify=y, random_state=seed
    )
    train_X, val_X, train_y, val_y = train_test_split(
        rest_X, rest_y, test_size=val_fraction / (1 - test_fraction), stratify=rest_y, random_state=seed
    )
    work_dir.mkdir(parents=True, exist_ok=True)
    splits = {"train": Split(train_X, train_y), "val": Split(val_X, val_y), "test": Split(test_X, test_y)}
    for split, arrays in splits.items():
        write_atomic(work_dir / f"{split}.npz", partial(_save_split, arrays=arrays))
    manifest = {
        "dataset": name,
        "n_features": int(X.shape[1]),
        "classes": sorted(int(c) for c in np.unique(y)),
        "class_names": [str(n) for n in getattr(bunch, "target_names", np.unique(y))],
        "splits": {split: {"file": f"{split}.npz", "rows": len(a.y)} for split, a in splits.items()},
        "seed": seed,
        "created_at": time.time(),
    }
    write_atomic(work_dir / MANIFEST, lambda path: path.write_text(json.dumps(manifest, indent=2)))
    return manifest


def read_manifest(work_dir: Path) -> dict[str, Any] | None:
    """The manifest of a prepared work directory, or None if it is not prepared."""
    path = work_dir / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


def load_split(work_dir: Path, split: str) -> Split:
    """The arrays of ``split`` from a prepared work directory."""
    with np.load(work_dir / f"{split}.npz") as arrays:
        return Split(arrays["X"], arrays["y"])


def _save_split(path: Path, arrays: Split) -> None:
    np.savez_compressed(path, X=arrays.X, y=arrays.y)


def write_atomic(path: Path, write: Callable[[Path], Any]) -> None:
    """Write through a temporary file and rename, so a killed job never leaves half a file."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    write(tmp)
    os.replace(tmp, path)
