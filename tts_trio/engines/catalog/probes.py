"""How availability looks at this machine without importing any engine.

Most engines pull in torch, a cloud SDK or PyAudio, and some cost seconds and
GBs to import, so availability only asks importlib whether a module *could*
be imported (``find_spec`` reads no module code), looks for files and
executables, and looks into the Hugging Face cache. Every finding is written
for the person who has to fix it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

FindSpec = Callable[[str], object]
Which = Callable[[str], str | None]


@attrs.frozen
class Probe:
    """How availability looks at the machine; tests replace each part."""

    find_spec: FindSpec
    which: Which
    hf_cache: Path


#: An engine's own check of a config against the machine: a list of problems, each with its fix.
Check = Callable[[Any, Probe], list[str]]


def no_check(config: Any, probe: Probe) -> list[str]:
    """For engines that need nothing beyond their packages and keys."""
    return []


def huggingface_cache(environ: Mapping[str, str] | None = None) -> Path:
    """The Hugging Face hub cache, found the way ``huggingface_hub`` finds it (not a secret, so read here)."""
    environ = os.environ if environ is None else environ
    if environ.get("HF_HUB_CACHE"):
        return Path(environ["HF_HUB_CACHE"]).expanduser()
    if environ.get("HF_HOME"):
        return Path(environ["HF_HOME"]).expanduser() / "hub"
    if environ.get("XDG_CACHE_HOME"):
        return Path(environ["XDG_CACHE_HOME"]).expanduser() / "huggingface" / "hub"
    return Path.home() / ".cache" / "huggingface" / "hub"


def hf_cached(cache: Path, repo_id: str, *files: str) -> bool:
    """Whether some cached snapshot of ``repo_id`` holds all of ``files``."""
    snapshots = cache / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    try:
        revisions = [path for path in snapshots.iterdir() if path.is_dir()]
    except OSError:
        return False
    return any(all((revision / name).exists() for name in files) for revision in revisions)


def hf_missing(probe: Probe, repo_id: str, what: str, *files: str) -> list[str]:
    """A problem (with the download command) unless ``repo_id``'s ``files`` are cached."""
    if hf_cached(probe.hf_cache, repo_id, *files):
        return []
    return [
        f"{what} not downloaded (no {repo_id} in the Hugging Face cache {probe.hf_cache}): "
        f"run `hf download {repo_id}` (huggingface_hub's CLI) or start the engine once with internet access"
    ]


def file_missing(path: str, what: str) -> list[str]:
    return [] if Path(path).expanduser().is_file() else [f"{what} not found: {path}"]


def installed(module: str, find_spec: FindSpec) -> bool:
    """Whether ``module`` could be imported; ``find_spec`` of a dotted name imports only its parents."""
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):
        return False
