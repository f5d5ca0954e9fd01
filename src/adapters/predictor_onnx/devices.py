"""Which execution providers to ask onnxruntime for, and the truth about what it then used.

onnxruntime silently falls back to the CPU when CUDA cannot start, and `get_available_providers()`
lists CUDA whenever onnxruntime-gpu is installed, GPU or not. So providers are always passed
explicitly and the session's own `get_providers()` is checked after creation: `cuda` fails fast,
`auto` reports what it really got.
"""

from __future__ import annotations

from importlib import metadata
from typing import Literal

import onnxruntime as ort

from predictor_core import ConfigurationError

__all__ = ["CPU", "CUDA", "Device", "check_active", "requested_providers"]

Device = Literal["cpu", "cuda", "auto"]
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
_DEVICES = ("cpu", "cuda", "auto")


def requested_providers(device: str) -> list[str]:
    """The providers to pass to `InferenceSession`, in priority order, for a device setting.

    Raises:
        ConfigurationError: unknown device, `cuda` without onnxruntime-gpu, or both runtimes installed.
    """
    if device not in _DEVICES:
        raise ConfigurationError(f"device must be one of {', '.join(_DEVICES)}, got {device!r}")
    _refuse_clashing_installs()
    has_cuda = CUDA in ort.get_available_providers()
    if device == "cuda" and not has_cuda:
        raise ConfigurationError(
            "device 'cuda' requested but onnxruntime-gpu is not installed (install predictor-core[gpu])"
        )
    return [CUDA, CPU] if device != "cpu" and has_cuda else [CPU]


def check_active(device: str, active: list[str]) -> None:
    """Refuse a `cuda` session that onnxruntime quietly started on the CPU (no GPU, no CUDA libs)."""
    if device == "cuda" and (not active or active[0] != CUDA):
        raise ConfigurationError(
            "device 'cuda' requested but onnxruntime could not start CUDA (no usable GPU or missing "
            f"CUDA/cuDNN libraries); providers in use: {', '.join(active) or 'none'}"
        )


def _refuse_clashing_installs() -> None:
    installed = []
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
        installed.append(dist)
    if len(installed) > 1:
        raise ConfigurationError(
            "both onnxruntime and onnxruntime-gpu are installed and overwrite each other's files; "
            "uninstall both, then install one (predictor-core[cpu] or predictor-core[gpu])"
        )
