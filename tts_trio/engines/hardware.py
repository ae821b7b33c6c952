"""Which accelerator this machine has, found without importing torch.

Why not ``torch.cuda.is_available()``: torch is several GB, it is not a
dependency of the default install (the ``system`` engine is espeak-ng on the
CPU), and importing it costs seconds and hundreds of MB of memory even where it
is installed. The operating system already knows the answer cheaply:

* the NVIDIA kernel driver lists every GPU under
  ``/proc/driver/nvidia/gpus/<bus id>/information``;
* where that directory is hidden (some containers), ``nvidia-smi -L`` lists
  them, and it is only run when it is on ``PATH``;
* every Apple-silicon Mac (Darwin on arm64) has an MPS-capable GPU.

``CUDA_VISIBLE_DEVICES`` is honoured the way CUDA reads it, so a server that
was given one GPU of eight sizes itself for one. Whether the installed torch
build can use the GPU is the engine's concern when it loads; this module only
answers "how many slots are worth opening". Detection never raises: anything
unexpected means "cpu".
"""

from __future__ import annotations

import logging
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

log = logging.getLogger(__name__)

#: Seconds ``nvidia-smi`` may take; a wedged driver must not stall start-up.
NVIDIA_SMI_TIMEOUT = 5.0
#: Engine GPU use (see :class:`tts_trio.engines.catalog.Capabilities`) for which GPUs set the slot count.
GPU_USERS = ("optional", "required")

_SMI_LINE = re.compile(r"^GPU (?P<index>\d+): (?P<name>.+?)(?: \(UUID: (?P<uuid>[^)]+)\))?$")


@attrs.frozen
class Device:
    """The accelerator engines can use: ``kind`` is ``cuda``, ``mps`` or ``cpu``.

    ``count`` is the number of GPUs for ``cuda``/``mps`` and of CPU cores for
    ``cpu``; ``names`` are the GPU models (empty for ``cpu``).
    """

    kind: str
    count: int
    names: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        """The device as JSON for ``/health`` and ``/v1/engines``."""
        return {"kind": self.kind, "count": self.count, "names": list(self.names)}


@attrs.frozen
class _Gpu:
    name: str
    uuid: str | None = None


def detect_device(
    *,
    proc_root: Path = Path("/proc"),
    which: Callable[[str], str | None] = shutil.which,
    platform_system: str = platform.system(),
    machine: str = platform.machine(),
    environ: Mapping[str, str] | None = None,
) -> Device:
    """The best device on this machine: CUDA GPUs, else Apple's MPS, else the CPU.

    Every parameter exists so tests can describe another machine (a fake
    ``/proc`` under ``tmp_path``, a ``which`` that finds or hides
    ``nvidia-smi``, another OS); the defaults look at this one.
    """
    try:
        gpus = _visible(_nvidia_gpus(proc_root, which), os.environ if environ is None else environ)
        if gpus:
            return Device("cuda", len(gpus), tuple(gpu.name for gpu in gpus))
        if platform_system == "Darwin" and machine in ("arm64", "aarch64"):
            return Device("mps", 1, ("Apple GPU",))
    except Exception:  # detection is advice: a surprise here must never stop the server
        log.warning("GPU detection failed; assuming CPU only", exc_info=True)
    return _cpu()


def usable_cores() -> int:
    """The CPU cores this process may run on: its affinity, which ``taskset`` and container cpusets narrow."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no sched_getaffinity (macOS)
        return max(1, os.cpu_count() or 1)


def default_slots(device: Device, *, gpu: str, slots_per_gpu: int = 1) -> int:
    """Synthesis slots when none are configured.

    An engine that runs on the GPU (``gpu`` is ``optional`` or ``required``)
    gets ``slots_per_gpu`` instances per GPU, because each instance holds its
    own copy of the model in GPU memory. Everything else gets one per CPU core.
    """
    if gpu in GPU_USERS and device.kind in ("cuda", "mps"):
        return max(1, device.count * slots_per_gpu)
    return usable_cores()


def _cpu() -> Device:
    return Device("cpu", usable_cores(), ())


def _nvidia_gpus(proc_root: Path, which: Callable[[str], str | None]) -> list[_Gpu]:
    """GPUs the NVIDIA driver reports: from /proc when it is there, else from ``nvidia-smi -L``."""
    gpus_dir = proc_root / "driver" / "nvidia" / "gpus"
    if gpus_dir.is_dir():
        return [_read_proc_gpu(entry) for entry in sorted(gpus_dir.iterdir()) if entry.is_dir()]
    executable = which("nvidia-smi")
    return _nvidia_smi_gpus(executable) if executable else []


def _read_proc_gpu(directory: Path) -> _Gpu:
    """One GPU from its driver ``information`` file (``Model:`` and ``GPU UUID:`` lines)."""
    fields: dict[str, str] = {}
    try:
        text = (directory / "information").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return _Gpu(fields.get("Model") or "NVIDIA GPU", fields.get("GPU UUID") or None)


def _nvidia_smi_gpus(executable: str) -> list[_Gpu]:
    """GPUs from ``nvidia-smi -L`` lines such as ``GPU 0: NVIDIA H100 (UUID: GPU-...)``."""
    try:
        result = subprocess.run(
            [executable, "-L"], capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return []
    if result.returncode != 0:
        return []
    gpus = []
    for line in result.stdout.splitlines():
        match = _SMI_LINE.match(line.strip())
        if match:
            gpus.append(_Gpu(match["name"].strip(), match["uuid"]))
    return gpus


def _visible(gpus: list[_Gpu], environ: Mapping[str, str]) -> list[_Gpu]:
    """The GPUs ``CUDA_VISIBLE_DEVICES`` leaves visible, read as CUDA does.

    Unset means all; empty or ``-1`` means none; otherwise a comma list of
    indexes or UUIDs (``GPU-...`` or a MIG slice's ``MIG-...``), read up to the
    first entry that names no GPU.
    """
    mask = environ.get("CUDA_VISIBLE_DEVICES")
    if mask is None:
        return gpus
    visible: dict[str, _Gpu] = {}
    for entry in (part.strip() for part in mask.split(",")):
        found = _pick(gpus, entry)
        if found is None or found[0] in visible:
            break
        visible[found[0]] = found[1]
    return list(visible.values())


def _pick(gpus: list[_Gpu], entry: str) -> tuple[str, _Gpu] | None:
    """The GPU one ``CUDA_VISIBLE_DEVICES`` entry names, keyed so duplicates can be told apart."""
    if entry.isdigit():
        index = int(entry)
        return (f"#{index}", gpus[index]) if index < len(gpus) else None
    for index, gpu in enumerate(gpus):
        if entry.startswith("GPU-") and gpu.uuid and gpu.uuid.startswith(entry):
            return f"#{index}", gpu
    if entry.startswith("MIG-") and gpus:
        # A MIG slice of one of the GPUs: the driver files do not say which, so it gets a generic name.
        return entry, _Gpu("NVIDIA MIG device", entry)
    return None
