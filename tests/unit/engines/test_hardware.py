"""GPU detection from the driver's files and nvidia-smi, on fake machines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tts_trio.engines import hardware
from tts_trio.engines.hardware import Device, default_slots, detect_device

CPUS = hardware.usable_cores()
SMI_OUTPUT = (
    "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-11111111-aaaa)\n"
    "  MIG 1g.10gb     Device  0: (UUID: MIG-22222222-bbbb)\n"
    "GPU 1: NVIDIA L4 (UUID: GPU-33333333-cccc)\n"
)


def no_which(name: str) -> str | None:
    return None


def fake_proc(root: Path, *gpus: tuple[str, str]) -> Path:
    """A /proc with the NVIDIA driver's per-GPU ``information`` files."""
    base = root / "driver" / "nvidia" / "gpus"
    base.mkdir(parents=True)
    for index, (model, uuid) in enumerate(gpus):
        folder = base / f"0000:0{index + 1}:00.0"
        folder.mkdir()
        (folder / "information").write_text(
            f"Model: \t\t {model}\nIRQ:   \t\t 42\nGPU UUID: \t {uuid}\nVideo BIOS: \t ??.??\n"
        )
    return root


def detect(proc_root: Path, **overrides: Any) -> Device:
    options: dict[str, Any] = {"which": no_which, "platform_system": "Linux", "machine": "x86_64", "environ": {}}
    options.update(overrides)
    return detect_device(proc_root=proc_root, **options)


def test_proc_with_two_gpus_is_cuda_with_their_names(tmp_path: Path) -> None:
    root = fake_proc(tmp_path, ("NVIDIA H100 80GB HBM3", "GPU-aaaa"), ("NVIDIA A100-SXM4-40GB", "GPU-bbbb"))

    def which(name: str) -> str | None:
        raise AssertionError("nvidia-smi must not be run when /proc answers")

    device = detect(root, which=which)
    assert device == Device("cuda", 2, ("NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB"))
    assert device.describe() == {"kind": "cuda", "count": 2, "names": list(device.names)}


def test_unreadable_information_file_still_counts_the_gpu(tmp_path: Path) -> None:
    (tmp_path / "driver" / "nvidia" / "gpus" / "0000:01:00.0").mkdir(parents=True)
    assert detect(tmp_path) == Device("cuda", 1, ("NVIDIA GPU",))


def test_no_driver_and_no_nvidia_smi_is_cpu(tmp_path: Path) -> None:
    device = detect(tmp_path / "missing")
    assert device == Device("cpu", CPUS, ())
    assert device.describe() == {"kind": "cpu", "count": CPUS, "names": []}


def test_driver_directory_without_gpus_is_cpu(tmp_path: Path) -> None:
    (tmp_path / "driver" / "nvidia" / "gpus").mkdir(parents=True)
    assert detect(tmp_path).kind == "cpu"


def test_nvidia_smi_is_asked_when_proc_is_hidden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[list[str], dict[str, Any]]] = []

    def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append((args, kwargs))
        return subprocess.CompletedProcess(args, 0, stdout=SMI_OUTPUT, stderr="")

    monkeypatch.setattr(subprocess, "run", run)
    device = detect(tmp_path, which=lambda name: "/usr/bin/nvidia-smi" if name == "nvidia-smi" else None)
    assert device == Device("cuda", 2, ("NVIDIA H100 80GB HBM3", "NVIDIA L4"))
    assert calls[0][0] == ["/usr/bin/nvidia-smi", "-L"]
    assert calls[0][1]["timeout"] == hardware.NVIDIA_SMI_TIMEOUT == 5


@pytest.mark.parametrize(
    "outcome",
    [
        subprocess.TimeoutExpired(["nvidia-smi", "-L"], 5),
        FileNotFoundError("nvidia-smi"),
        subprocess.CompletedProcess(["nvidia-smi", "-L"], 9, stdout="NVIDIA-SMI has failed", stderr=""),
        subprocess.CompletedProcess(["nvidia-smi", "-L"], 0, stdout="No devices were found\n", stderr=""),
    ],
)
def test_nvidia_smi_failures_mean_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outcome: object) -> None:
    def run(args: list[str], **kwargs: Any) -> object:
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    monkeypatch.setattr(subprocess, "run", run)
    assert detect(tmp_path, which=lambda name: "/usr/bin/nvidia-smi").kind == "cpu"


def test_darwin_arm64_is_mps(tmp_path: Path) -> None:
    assert detect(tmp_path, platform_system="Darwin", machine="arm64") == Device("mps", 1, ("Apple GPU",))
    assert detect(tmp_path, platform_system="Darwin", machine="x86_64").kind == "cpu"


@pytest.mark.parametrize(
    ("mask", "names"),
    [
        ("", ()),
        ("-1", ()),
        ("1", ("NVIDIA L4",)),
        ("1,0", ("NVIDIA L4", "NVIDIA H100")),
        ("0,7,1", ("NVIDIA H100",)),  # CUDA stops reading at the first index that names no GPU
        ("0,0", ("NVIDIA H100",)),
        ("GPU-bbbb", ("NVIDIA L4",)),
        ("MIG-2222", ("NVIDIA MIG device",)),
    ],
)
def test_cuda_visible_devices_is_honoured(tmp_path: Path, mask: str, names: tuple[str, ...]) -> None:
    root = fake_proc(tmp_path, ("NVIDIA H100", "GPU-aaaa-1111"), ("NVIDIA L4", "GPU-bbbb-2222"))
    device = detect(root, environ={"CUDA_VISIBLE_DEVICES": mask})
    assert device.names == names
    assert device.kind == ("cuda" if names else "cpu")


def test_a_surprise_during_detection_means_cpu(tmp_path: Path) -> None:
    def which(name: str) -> str | None:
        raise RuntimeError("boom")

    assert detect(tmp_path, which=which).kind == "cpu"


def test_default_slots_follow_gpus_only_for_gpu_engines() -> None:
    two_gpus = Device("cuda", 2, ("A", "B"))
    assert default_slots(two_gpus, gpu="optional") == 2
    assert default_slots(two_gpus, gpu="required", slots_per_gpu=3) == 6
    assert default_slots(Device("mps", 1, ("Apple GPU",)), gpu="optional") == 1
    assert default_slots(two_gpus, gpu="no") == CPUS
    assert default_slots(Device("cpu", CPUS), gpu="required") == CPUS


def test_importing_and_detecting_never_imports_torch() -> None:
    code = "import sys, tts_trio.engines.hardware as h; h.detect_device(); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "False"
