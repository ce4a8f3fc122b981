"""Held-out-drive mIoU per epoch of dev runs (trained without CamVid drive 0006R0), side by side.

``python docs/figures/dev_curves.py --run NAME=LOG.jsonl ... --out docs/self_training_dev_curves.png``
plots each run's ``dev_miou`` (solid) and ``val_miou`` (dotted) per epoch from its ``log.jsonl``
(written by ``train base --holdout-drive``), and prints each run's last epoch and mean of its
last 5 epochs on the held-out drive, the figure the recipe decisions use.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def last5(log: list[dict], key: str = "dev_miou") -> float:
    vals = [e[key] for e in log if e.get(key) is not None][-5:]
    return sum(vals) / len(vals)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="append", required=True, metavar="NAME=LOG", help="a run's name and its log.jsonl")
    ap.add_argument("--out", type=Path, required=True, help="the PNG to write")
    a = ap.parse_args()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    summary = {}
    for spec in a.run:
        name, _, path = spec.partition("=")
        log = read_log(Path(path))
        epochs = [e["epoch"] for e in log]
        (line,) = ax.plot(epochs, [e.get("dev_miou") for e in log], label=f"{name}: held-out drive")
        ax.plot(epochs, [e.get("val_miou") for e in log], ":", color=line.get_color(), label=f"{name}: val clip")
        summary[name] = {"epochs": len(log), "last": log[-1].get("dev_miou"), "last5_mean": round(last5(log), 2),
                         "val_last5_mean": round(last5(log, "val_miou"), 2)}
    ax.set_xlabel("epoch")
    ax.set_ylabel("mIoU")
    ax.set_title("Trained without CamVid drive 0006R0: that drive (solid) and the val clip (dotted)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center", ncol=2)  # in the gap between the two families of curves
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
