"""Numerics settings: the CPU instruction-set pin, the CUDA switches, what run.json records, device choice."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch

from batchbald import numerics, train


def test_pin_defaults_to_the_avx2_baseline_and_keeps_what_the_user_set():
    env = {}
    assert numerics.pin_cpu_isa(env) == "avx2"
    assert env["ATEN_CPU_CAPABILITY"] == "avx2" and env["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert env["MKL_CBWR"] == "AVX2,STRICT" and env["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    env = {"MKL_CBWR": "COMPATIBLE"}
    numerics.pin_cpu_isa(env)
    assert env["MKL_CBWR"] == "COMPATIBLE"


def test_native_opt_in_and_bad_values():
    env = {"BATCHBALD_CPU_ISA": "native"}
    assert numerics.pin_cpu_isa(env) == "native"
    assert "ATEN_CPU_CAPABILITY" not in env and env["MKL_CBWR"] == "AUTO,STRICT"
    with pytest.raises(ValueError, match="must be 'avx2' or 'native', got 'avx512'"):
        numerics.pin_cpu_isa({"BATCHBALD_CPU_ISA": "avx512"})


def test_pinned_process_reports_avx2():
    code = (
        "import os; from batchbald.numerics import pin_cpu_isa; pin_cpu_isa(); import torch; "
        "print(torch.backends.cpu.get_cpu_capability())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in __import__("os").environ.items() if k != "ATEN_CPU_CAPABILITY"},
    )
    assert out.stdout.strip() in ("AVX2", "DEFAULT")  # DEFAULT only on a CPU without AVX2


def test_record_names_what_decides_the_numbers():
    rec = numerics.record(torch.device("cpu"))
    assert rec["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert rec["torch"] == torch.__version__ and rec["threads"] == torch.get_num_threads()
    assert rec["mkl"] is None or "20" in rec["mkl"]
    assert rec["onednn"] is None or rec["onednn"].startswith("v")


def test_configure_cuda_switches_tf32_off_and_determinism_on():
    before = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.deterministic,
        torch.are_deterministic_algorithms_enabled(),
    )
    try:
        numerics.configure_cuda()
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.backends.cudnn.deterministic and torch.are_deterministic_algorithms_enabled()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before[:2]
        torch.backends.cudnn.deterministic = before[2]
        torch.use_deterministic_algorithms(before[3])


def test_auto_warns_when_a_gpu_is_present_but_unusable(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(train, "gpu_hardware_present", lambda: "/dev/nvidia0 exists")
    with pytest.warns(UserWarning, match="a GPU seems present .*/dev/nvidia0.* running on the CPU"):
        assert train.resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(train, "gpu_hardware_present", lambda: None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert train.resolve_device("auto") == torch.device("cpu")


def test_jobs_are_spread_over_the_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert [train.resolve_device("auto", job_index=j) for j in (0, 1, 5)] == [
        torch.device("cuda", 0),
        torch.device("cuda", 1),
        torch.device("cuda", 1),
    ]
    assert train.resolve_device("cuda:3", job_index=1) == torch.device("cuda", 3)
    with pytest.raises(ValueError, match="allowed: auto, cpu, cuda, cuda:<i>"):
        train.resolve_device("gpu")
