"""Per-stage records of a series: what each stage was made from, so a rerun skips or redoes it.

Each stage of a series (see :mod:`.stages`) writes its outputs atomically and then one entry in
``<prefix>_stages.json`` beside them:

``inputs``
    the identity of what it read: input files (path, size, modification time) and the keys of
    the upstream stages whose outputs it used;
``settings``
    the settings that change the *content* of its files (step size, seed, ...);
``products``
    what it made of those (weightings, atlases): asking for more products redoes the stage,
    asking for fewer does not;
``version``
    the package version;
``key``
    a digest of inputs, settings and version: what downstream stages record as their input, so
    that a redone upstream stage (new input, new version) redoes everything downstream.

A stage whose record matches (and whose files all exist) is skipped. Its name is the same under
other settings when the settings are not in the file names (the model and the tracking algorithm
are; the step size is not): :meth:`StageRecords.clashes` finds them, so that a run never
replaces another configuration's files unless told to (``force``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from .._typing import PathLike
from ..io.write import read_json_object, save_json

__all__ = ["StageRecords", "file_identity", "digest"]


def digest(value: Any) -> str:
    """16 hex digits of the SHA-256 of ``value`` as sorted JSON."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_identity(path: PathLike | None) -> dict | None:
    """What identifies an input file without reading it: its absolute path, size and
    modification time (ns), as ``make`` would; None for no file."""
    if path is None:
        return None
    path = Path(path)
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


@dataclass
class StageRecords:
    """The stage records of one series, read from and written to ``path``.

    Attributes
    ----------
    path : ``<series folder>/<prefix>_stages.json``.
    stages : stage name → record (dict with ``key``, ``inputs``, ``settings``, ``products``,
        ``version``, ``files``, ``seconds``, ``peak_mb`` and stage-specific extras).
    """

    path: Path
    stages: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def load(cls, path: PathLike) -> StageRecords:
        """The records at ``path`` (none when the file is missing or unreadable: a half-written
        file cannot exist, the file is replaced atomically)."""
        stages = read_json_object(path).get("stages", {})
        return cls(Path(path), stages if isinstance(stages, dict) else {})

    @staticmethod
    def key(inputs: dict, settings: dict) -> str:
        return digest({"inputs": inputs, "settings": settings, "version": __version__})

    def current(self, stage: str, *, inputs: dict, settings: dict, products: list | tuple = ()) -> dict | None:
        """The record of ``stage`` if it still holds: same key (inputs, settings, version), every
        requested product made, every recorded file present. None when the stage must run."""
        record = self.stages.get(stage)
        if record is None or record.get("key") != self.key(inputs, settings):
            return None
        if not set(map(str, products)) <= set(record.get("products", [])):
            return None
        if not all(Path(p).exists() for p in _paths(record.get("files", {}))):
            return None
        return record

    def clashes(self, planned: dict[str, dict]) -> list[tuple[str, dict]]:
        """Stages of ``planned`` (name → settings) recorded here with other settings: running
        them would replace files another configuration made. Returns (stage, {setting: (recorded,
        planned)}) for each."""
        out = []
        for stage, settings in planned.items():
            record = self.stages.get(stage)
            if record is None or record.get("settings") == settings:
                continue
            old = record.get("settings", {})
            diff = {k: (old.get(k), settings.get(k)) for k in sorted(set(old) | set(settings))
                    if old.get(k) != settings.get(k)}
            out.append((stage, diff))
        return out

    def save(self, stage: str, *, inputs: dict, settings: dict, products: list | tuple = (),
             files: dict | None = None, **extra: Any) -> dict:
        """Record ``stage`` as done (after its outputs are written) and rewrite the file
        atomically. Returns the record; its ``key`` is what downstream stages take as input."""
        record = {"key": self.key(inputs, settings), "inputs": inputs, "settings": settings,
                  "products": sorted(map(str, products)), "version": __version__, "files": files or {}, **extra}
        self.stages[stage] = record
        save_json(self.path, {"stages": self.stages})
        return record


def _paths(files: dict) -> list[str]:
    out: list[str] = []
    for value in files.values():
        if isinstance(value, dict):
            out.extend(_paths(value))
        elif value:
            out.append(str(value))
    return out
