"""One step of every optimizer rule on device parameters equals the same step on the CPU, and so do the gradient
norm, clipping and the optimizer state (which is numpy on both, so a run resumes on either device)."""
import numpy as np
import pytest

from convdesigner.engine.layers import Parameter
from convdesigner.engine.optimizers import clip_grad_norm, global_norm, make_optimizer

from .conftest import assert_same, up

SETTINGS = {
    "sgd": ("sgd", {}),
    "sgd-momentum": ("sgd", {"momentum": 0.9}),
    "sgd-nesterov-decay": ("sgd", {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    "adam": ("adam", {}),
    "adam-decay": ("adam", {"weight_decay": 0.01}),
    "adamw": ("adamw", {"weight_decay": 0.05}),
    "rmsprop": ("rmsprop", {}),
    "rmsprop-momentum-decay": ("rmsprop", {"momentum": 0.8, "weight_decay": 0.01}),
    "adagrad": ("adagrad", {"weight_decay": 0.01}),
}


def params(on_gpu):
    rng = np.random.default_rng(0)
    shapes = {"kernel": (3, 2, 2, 2), "bias": (3,)}
    made = []
    for name, shape in shapes.items():
        value, grad = rng.normal(size=shape).astype(np.float32), rng.normal(size=shape).astype(np.float32)
        made.append(Parameter("conv", name, up(value) if on_gpu else value, up(grad) if on_gpu else grad,
                              decay=name == "kernel"))
    return made


def host(ps):
    return [p.value if isinstance(p.value, np.ndarray) else p.value.copy_to_host() for p in ps]


@pytest.mark.parametrize("case", SETTINGS)
def test_two_steps_match_the_cpu(case):
    kind, hyper = SETTINGS[case]
    cpu_params, gpu_params = params(False), params(True)
    cpu, gpu = (make_optimizer(kind, ps, 0.05, **hyper) for ps in (cpu_params, gpu_params))
    for _ in range(2):
        cpu.step()
        gpu.step()
    assert_same(host(cpu_params), host(gpu_params), case)
    assert_same(cpu.state_dict(), gpu.state_dict(), f"{case} state")


def test_optimizer_state_moves_between_devices():
    gpu_params, cpu_params = params(True), params(False)
    gpu = make_optimizer("adam", gpu_params, 0.01)
    gpu.step()
    cpu = make_optimizer("adam", cpu_params, 0.01)
    cpu.load_state_dict(gpu.state_dict())
    back = make_optimizer("adam", params(True), 0.01)
    back.load_state_dict(cpu.state_dict())
    assert_same(gpu.state_dict(), back.state_dict(), "round trip")


def test_gradient_norm_and_clipping_match_the_cpu():
    cpu_params, gpu_params = params(False), params(True)
    assert abs(global_norm(cpu_params) - global_norm(gpu_params)) < 1e-5
    before = clip_grad_norm(gpu_params, 0.5)
    assert abs(before - clip_grad_norm(cpu_params, 0.5)) < 1e-5
    assert_same([p.grad for p in cpu_params], [p.grad.copy_to_host() for p in gpu_params], "clipped")
    assert abs(global_norm(gpu_params) - 0.5) < 1e-5
    gpu_params[1].grad.copy_to_device(np.array([np.inf, 0, 0], np.float32))
    assert global_norm(gpu_params) == np.inf
