"""Hatchling build hook: the tutorial notebooks go into the wheel and sdist as clean copies.

Whatever the checkout holds (outputs a JupyterLab saved, ``.ipynb_checkpoints/``, widget
state), a package carries only ``notebooks/*.ipynb`` with outputs, execution counts and
widget state removed. The wheel gets them as ``easnb/_tutorials/``, the sdist as ``notebooks/``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


def clean(text: str) -> str:
    """A notebook's JSON without outputs, execution counts or saved widget state."""
    nb = json.loads(text)
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
        cell.get("metadata", {}).pop("execution", None)
    nb.get("metadata", {}).pop("widgets", None)
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


class CleanNotebooks(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "editable":  # an editable install reads the checkout's notebooks/ itself
            return
        where = "easnb/_tutorials" if self.target_name == "wheel" else "notebooks"
        self._folder = Path(tempfile.mkdtemp(prefix="easnb-notebooks-"))
        for source in sorted(Path(self.root, "notebooks").glob("*.ipynb")):
            copy = self._folder / source.name
            copy.write_text(clean(source.read_text(encoding="utf-8")), encoding="utf-8")
            build_data["force_include"][str(copy)] = f"{where}/{source.name}"

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        folder = getattr(self, "_folder", None)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
