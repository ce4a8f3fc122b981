"""Plots written next to results (matplotlib, Agg backend, PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def training_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Loss (left axis) and val mIoU (right axis) per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(epochs, [h["loss"] for h in history], color="tab:blue", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss", color="tab:blue")
    val = [(h["epoch"], h["val_miou"]) for h in history if h.get("val_miou") is not None]
    if val:
        ax2 = ax.twinx()
        ax2.plot([e for e, _ in val], [m for _, m in val], color="tab:red", label="val mIoU")
        ax2.set_ylabel("val mIoU (%)", color="tab:red")
    ax.set_title("training curves")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
