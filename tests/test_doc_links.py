"""Contract: every relative link in the README, the docs and the model card points at a file or
folder of the repository (a moved or renamed result must not leave a dead link behind)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
        ROOT / "src" / "lowlatseg" / "weights" / "MODEL_CARD.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def relative_links(text: str) -> list[str]:
    """The link targets of ``[text](target)`` that are paths, without any ``#anchor``."""
    targets = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        targets.append(target.split("#", 1)[0])
    return targets


def test_relative_links_finds_paths_only() -> None:
    text = "[a](docs/x.md) [b](https://e.org/y) [c](#part) [d](../z.png#top) [e](mailto:q@r)"
    assert relative_links(text) == ["docs/x.md", "../z.png"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(doc: Path) -> None:
    assert doc.exists(), doc
    dead = [t for t in relative_links(doc.read_text(encoding="utf-8")) if not (doc.parent / t).exists()]
    assert not dead, f"{doc.relative_to(ROOT)} links to missing paths: {dead}"
