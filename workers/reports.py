"""How good a trained model is: metrics on a split, predictions with scores, a confusion-matrix PNG.

The PNG is drawn with Pillow (no plotting library needed): one cell per (true, predicted)
pair, shaded by the share of the true class, with the count written in it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix
from sklearn.pipeline import Pipeline

from workers.datasets import Split, write_atomic

CELL_PX = 44
MARGIN_PX = 70


def evaluate(model: Pipeline, data: Split, labels: list[int]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/f1 and the confusion matrix of ``model`` on ``data``."""
    predicted = model.predict(data.X)
    return {
        "accuracy": float(accuracy_score(data.y, predicted)),
        "rows": len(data.y),
        "per_class": classification_report(
            data.y, predicted, labels=labels, output_dict=True, zero_division=0
        ),
        "confusion_matrix": confusion_matrix(data.y, predicted, labels=labels).tolist(),
    }


def predict(model: Pipeline, X: np.ndarray, top_k: int) -> list[dict[str, Any]]:
    """For each row: the predicted label, its score (probability) and the ``top_k`` labels with scores."""
    scores = model.predict_proba(X)
    classes = model.classes_
    rows = []
    for index, row in enumerate(scores):
        best = np.argsort(row)[::-1][:top_k]
        rows.append(
            {
                "index": index,
                "label": int(classes[best[0]]),
                "score": round(float(row[best[0]]), 6),
                "top": [[int(classes[i]), round(float(row[i]), 6)] for i in best],
            }
        )
    return rows


def write_predictions(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` as JSON lines, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda tmp: tmp.write_text("".join(json.dumps(r) + "\n" for r in rows)))


def draw_confusion(path: Path, matrix: list[list[int]], names: list[str], title: str) -> None:
    """Draw ``matrix`` (rows: true class, columns: predicted) as a PNG at ``path``."""
    counts = np.asarray(matrix)
    n = len(counts)
    size = MARGIN_PX + n * CELL_PX + 10
    image = Image.new("RGB", (size, size + 20), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    for i, name in enumerate(names):
        for j in range(n):
            x, y = MARGIN_PX + j * CELL_PX, MARGIN_PX + i * CELL_PX
            shade = int(255 * (1 - shares[i, j]))
            draw.rectangle([x, y, x + CELL_PX, y + CELL_PX], fill=(shade, shade, 255), outline="gray")
            ink = "white" if shares[i, j] > 0.5 else "black"
            draw.text((x + CELL_PX / 2, y + CELL_PX / 2), str(counts[i, j]), fill=ink, font=font, anchor="mm")
        middle = MARGIN_PX + (i + 0.5) * CELL_PX
        draw.text((MARGIN_PX - 6, middle), name[:8], fill="black", font=font, anchor="rm")
        draw.text((middle, MARGIN_PX - 6), name[:8], fill="black", font=font, anchor="mb")
    draw.text((8, 8), title, fill="black", font=font)
    draw.text((8, MARGIN_PX - 24), "true \\ predicted", fill="gray", font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda tmp: image.save(tmp, format="PNG"))
