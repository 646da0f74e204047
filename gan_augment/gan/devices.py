"""Where computation runs: device selection and what each device runs fast."""

from __future__ import annotations

import torch

CPUINFO = "/proc/cpuinfo"  # where Linux lists the CPU's flags


def select_device(requested: str = "auto") -> torch.device:
    """"auto" picks cuda, then mps, then cpu; an explicit device must be available."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available[requested]:
        raise ValueError(f"device {requested!r} is not available here; use --device auto or cpu")
    return torch.device(requested)


def has_native_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast pays on `device`: CUDA GPUs with bf16 units, and CPUs with
    AVX512-BF16 or AMX, where oneDNN runs bf16 convolutions natively (measured about 1.7x
    faster than fp32 per step here, see BENCHMARKS.md). Elsewhere bf16 would be emulated."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_bf16_units() is not None
    return False


def cpu_bf16_units() -> str | None:
    """The CPU's native bf16 units, "AMX" or "AVX512-BF16" (by `CPUINFO`'s flags), or None.
    oneDNN's bf16 kernels differ between the two, so one seed trains to other weights on each
    (BENCHMARKS.md, "One seed on other CPUs")."""
    try:
        with open(CPUINFO) as f:
            flags = f.read()
    except OSError:
        return None
    if " amx_bf16" in flags:
        return "AMX"
    if " avx512_bf16" in flags:
        return "AVX512-BF16"
    return None
