"""Writing result files: checked before any work, written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lowlatseg.errors import UserError


def check_parent(path: Path) -> None:
    """A clear error, before any work, when ``path`` cannot be written (no such folder, read-only)."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"cannot write {path}: folder {parent} does not exist; create it or choose another path")
    if not os.access(parent, os.W_OK):
        raise UserError(f"cannot write {path}: folder {parent} is not writable")


def write_json(obj: Any, path: Path) -> None:
    """``obj`` as indented JSON, through a temporary file renamed into place."""
    check_parent(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)
