"""Choosing CUDA where it cannot run: one clear reason (the missing extra with its install command, the driver, a
device) from device_status, the same reason from compile, the CLI and the bench, and nothing crashes."""
import importlib.util

import pytest

from convdesigner.cli import main
from convdesigner.engine import CompileError, bench, compile, device_status
from convdesigner.engine.cuda import status
from convdesigner.graph.templates import build

CUDA_OK, CUDA_REASON = device_status("cuda")
no_gpu = pytest.mark.skipif(CUDA_OK, reason=f"CUDA is available here ({CUDA_REASON})")


def test_cpu_is_always_available_and_unknown_devices_are_named():
    assert device_status("cpu")[0]
    available, reason = device_status("tpu")
    assert not available and "'tpu'" in reason and "'cuda'" in reason
    with pytest.raises(CompileError, match="unknown device 'tpu'"):
        compile(build("lenet5"), device="tpu")


def test_a_missing_extra_names_its_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(status.importlib.util, "find_spec", lambda name: None if name == "numba_cuda" else real(name))
    available, reason = device_status("cuda")
    assert not available and "pip install 'convdesigner[cuda]'" in reason


def test_driver_and_device_problems_are_told_apart():
    assert "NVIDIA driver" in status._explain("Error at driver init: CUDA driver library cannot be found.")
    assert "no NVIDIA GPU" in status._explain("CUDA_ERROR_NO_DEVICE: no CUDA-capable device is detected")
    assert status._explain("something odd").startswith("CUDA could not start: something odd")


@no_gpu
def test_compiling_for_cuda_without_a_gpu_gives_the_reason():
    with pytest.raises(CompileError) as e:
        compile(build("lenet5"), device="cuda")
    assert "CUDA backend is not available" in str(e.value) and CUDA_REASON in str(e.value)


@no_gpu
def test_the_cli_and_bench_refuse_cuda_with_the_reason(capsys, tmp_path):
    for argv in (["eval", str(tmp_path / "m.h5"), "--device", "cuda"],
                 ["predict", str(tmp_path / "m.h5"), "digit.png", "--device", "cuda"],
                 ["bench", "--device", "cuda", "--quick", "--no-torch"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert CUDA_REASON in err and "Traceback" not in err
    with pytest.raises(ValueError, match="cannot benchmark on cuda"):
        bench.run(["lenet5"], [8], device="cuda")
