"""What decides a run's numbers, and the settings that make them repeatable.

CPU: torch, oneDNN and MKL pick kernels by instruction set, so the same seed can give different numbers on an
AVX2 and an AVX-512 machine. `pin_cpu_isa` (called by experiments/run.py before torch is imported) fixes the
kernels to the AVX2 baseline unless BATCHBALD_CPU_ISA=native.

CUDA: `configure_cuda` turns TF32 off (numbers comparable with CPU float32) and asks for deterministic algorithms
(cuDNN convolutions, cuBLAS with a fixed workspace), so that a resumed run repeats an uninterrupted one on the
same GPU model, driver and torch version.
"""

from __future__ import annotations

import os
import re

CPU_ISA_ENV = "BATCHBALD_CPU_ISA"  # "avx2" (default): portable kernels; "native": the fastest this CPU has
CUBLAS_WORKSPACE = ":4096:8"


def pin_cpu_isa(environ=os.environ) -> str:
    """Set the instruction-set variables (only those not set already) before torch loads; returns the choice."""
    choice = environ.get(CPU_ISA_ENV, "avx2").lower()
    if choice not in ("avx2", "native"):
        raise ValueError(f"{CPU_ISA_ENV} must be 'avx2' or 'native', got {choice!r}")
    if choice == "avx2":
        environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")
        environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")
        environ.setdefault("MKL_CBWR", "AVX2,STRICT")
    else:
        environ.setdefault("MKL_CBWR", "AUTO,STRICT")  # bitwise-stable for a given thread count on this machine
    environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)  # read when cuBLAS starts
    return choice


def configure_cuda(*, tf32: bool = False, deterministic: bool = True) -> None:
    """TF32 off (default) and deterministic CUDA kernels; call before the first CUDA operation of a run."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def _config_line(pattern: str) -> str | None:
    import torch

    match = re.search(pattern, torch.__config__.show())
    return match.group(1).strip() if match else None


def record(device) -> dict:
    """The facts that decide the numbers, for run.json."""
    import torch

    out = {
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_isa_setting": os.environ.get(CPU_ISA_ENV, "avx2"),
        "mkl": _config_line(r"Math Kernel Library Version ([^\n]+?) for"),
        "onednn": _config_line(r"MKL-DNN (v[\d.]+)"),
        "mkl_cbwr": os.environ.get("MKL_CBWR"),
        "threads": torch.get_num_threads(),
        "device": str(device),
    }
    if getattr(device, "type", str(device)) == "cuda":
        out.update(
            gpu=torch.cuda.get_device_name(device),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            tf32=torch.backends.cuda.matmul.allow_tf32,
            deterministic=torch.are_deterministic_algorithms_enabled(),
            cublas_workspace=os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        )
    return out
