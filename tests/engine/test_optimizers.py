"""Each optimizer against its published update rule, written out step by step in numpy (torch.optim conventions)."""
from dataclasses import dataclass, field

import numpy as np
import pytest

from convdesigner.engine.optimizers import OPTIMIZERS, clip_grad_norm, global_norm, make_optimizer


@dataclass
class Param:
    """The engine's Parameter contract: block, name, value and grad updated in place, decay flag."""
    block: str
    name: str
    value: np.ndarray
    grad: np.ndarray = field(default=None)
    decay: bool = True

    def __post_init__(self):
        self.value = np.asarray(self.value, np.float32)
        if self.grad is None:
            self.grad = np.zeros_like(self.value)


P0 = np.array([[1.0, -2.0, 0.5], [0.25, 3.0, -0.75]])
GRADS = [np.array([[0.5, -1.0, 0.2], [0.0, 2.0, -0.3]]),
         np.array([[0.4, 0.1, -0.6], [1.5, -0.5, 0.05]]),
         np.array([[-0.2, 0.3, 0.9], [0.7, 0.0, -1.2]])]


def run(kind, lr, steps=3, decay=True, **hyper):
    """Apply the optimizer to one 2×3 weight for ``steps`` steps of the fixed gradients; float64 copy of the result."""
    p = Param("fc", "kernel", P0.copy(), decay=decay)
    opt = make_optimizer(kind, [p], lr, **hyper)
    for g in GRADS[:steps]:
        p.grad[...] = g
        opt.step()
    return p.value.astype(np.float64)


def test_sgd_momentum_by_hand():
    # p=1, g=0.5 each step, lr=0.1, momentum 0.9: buf 0.5, 0.95, 1.355 -> p 0.95, 0.855, 0.7195
    p = Param("fc", "bias", np.array([1.0]))
    opt = make_optimizer("sgd", [p], 0.1, momentum=0.9)
    seen = []
    for _ in range(3):
        p.grad[:] = 0.5
        opt.step()
        seen.append(float(p.value[0]))
    np.testing.assert_allclose(seen, [0.95, 0.855, 0.7195], rtol=1e-6)


def test_sgd_nesterov_by_hand():
    # torch: buf = mu*buf + g; step = g + mu*buf -> 0.5+0.45=0.95 then 0.5+0.9*0.95=1.355
    p = Param("fc", "bias", np.array([1.0]))
    opt = make_optimizer("sgd", [p], 0.1, momentum=0.9, nesterov=True)
    seen = []
    for _ in range(2):
        p.grad[:] = 0.5
        opt.step()
        seen.append(float(p.value[0]))
    np.testing.assert_allclose(seen, [0.905, 0.7695], rtol=1e-6)


def test_sgd_weight_decay_rule():
    lr, mu, wd = 0.05, 0.8, 0.1
    p, buf = P0.copy(), np.zeros_like(P0)
    for g in GRADS:
        d = g + wd * p
        buf = mu * buf + d
        p = p - lr * buf
    np.testing.assert_allclose(run("sgd", lr, momentum=mu, weight_decay=wd), p, rtol=1e-5, atol=1e-6)
    plain = P0 - lr * sum(GRADS)
    np.testing.assert_allclose(run("sgd", lr), plain, rtol=1e-6, atol=1e-6)


def test_weight_decay_skips_arrays_marked_no_decay():
    np.testing.assert_allclose(run("sgd", 0.05, decay=False, weight_decay=0.5), run("sgd", 0.05), atol=0)
    np.testing.assert_allclose(run("adamw", 0.01, decay=False, weight_decay=0.5),
                               run("adam", 0.01), atol=0)


def adam_reference(lr, b1, b2, eps, wd, decoupled):
    p, m, v = P0.copy(), np.zeros_like(P0), np.zeros_like(P0)
    for t, g in enumerate(GRADS, start=1):
        if decoupled:
            p = p * (1 - lr * wd)
        else:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


def test_adam_first_step_moves_by_lr_times_sign():
    # bias correction makes the first step lr·g/|g| (≈ lr·sign(g)); a zero gradient does not move the weight
    got = run("adam", 0.01, steps=1)
    expect = P0 - 0.01 * np.sign(GRADS[0])
    np.testing.assert_allclose(got, expect, atol=1e-6)
    assert got[1, 0] == P0[1, 0]


def test_adam_rule():
    expect = adam_reference(0.01, 0.9, 0.999, 1e-8, 0.0, False)
    np.testing.assert_allclose(run("adam", 0.01), expect, rtol=1e-5, atol=1e-6)
    expect = adam_reference(0.02, 0.8, 0.99, 1e-3, 0.1, False)
    np.testing.assert_allclose(run("adam", 0.02, beta1=0.8, beta2=0.99, eps=1e-3, weight_decay=0.1), expect,
                               rtol=1e-5, atol=1e-6)


def test_adamw_decays_decoupled():
    expect = adam_reference(0.01, 0.9, 0.999, 1e-8, 0.5, True)
    np.testing.assert_allclose(run("adamw", 0.01, weight_decay=0.5), expect, rtol=1e-5, atol=1e-6)
    # decoupled decay is not the same as adding wd·p to the gradient
    assert not np.allclose(expect, adam_reference(0.01, 0.9, 0.999, 1e-8, 0.5, False), atol=1e-4)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_rmsprop_rule(momentum):
    lr, alpha, eps, wd = 0.01, 0.9, 1e-6, 0.05
    p, sq, buf = P0.copy(), np.zeros_like(P0), np.zeros_like(P0)
    for g in GRADS:
        g = g + wd * p
        sq = alpha * sq + (1 - alpha) * g * g
        step = g / (np.sqrt(sq) + eps)
        if momentum:
            buf = momentum * buf + step
            step = buf
        p = p - lr * step
    got = run("rmsprop", lr, alpha=alpha, eps=eps, weight_decay=wd, momentum=momentum)
    np.testing.assert_allclose(got, p, rtol=1e-5, atol=1e-6)


def test_rmsprop_first_step_by_hand():
    # sq = (1-0.99)·0.5² = 0.0025, sqrt = 0.05, step = 0.5/0.05 = 10 → p = 1 − 0.01·10 = 0.9
    p = Param("fc", "bias", np.array([1.0]))
    opt = make_optimizer("rmsprop", [p], 0.01)
    p.grad[:] = 0.5
    opt.step()
    assert p.value[0] == pytest.approx(0.9, rel=1e-6)


def test_adagrad_rule():
    lr, eps, wd = 0.1, 1e-10, 0.01
    p, acc = P0.copy(), np.zeros_like(P0)
    for g in GRADS:
        g = g + wd * p
        acc = acc + g * g
        p = p - lr * g / (np.sqrt(acc) + eps)
    np.testing.assert_allclose(run("adagrad", lr, weight_decay=wd), p, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind,hyper", [("sgd", {"momentum": 0.9, "nesterov": True}), ("adam", {}),
                                        ("adamw", {}), ("rmsprop", {"momentum": 0.5}), ("adagrad", {})])
def test_state_round_trip_is_exact(kind, hyper):
    """Two steps, save, load into a fresh optimizer, one more step == three steps straight."""
    straight = run(kind, 0.01, steps=3, **hyper)
    p = Param("fc", "kernel", P0.copy())
    opt = make_optimizer(kind, [p], 0.01, **hyper)
    for g in GRADS[:2]:
        p.grad[...] = g
        opt.step()
    state = opt.state_dict()
    assert state["kind"] == kind and state["step"] == 2 and set(state["slots"]) == {"fc/kernel"}
    p2 = Param("fc", "kernel", p.value.copy())
    opt2 = make_optimizer(kind, [p2], 0.5)  # wrong lr and defaults: the state must bring the settings back
    opt2.load_state_dict(state)
    assert opt2.lr == 0.01 and opt2.hyper == opt.hyper
    p2.grad[...] = GRADS[2]
    opt2.step()
    np.testing.assert_array_equal(p2.value.astype(np.float64), straight)


def test_state_is_a_copy_and_load_checks_shapes():
    p = Param("fc", "kernel", P0.copy())
    opt = make_optimizer("adam", [p], 0.01)
    p.grad[...] = GRADS[0]
    opt.step()
    state = opt.state_dict()
    m = state["slots"]["fc/kernel"]["m"]
    p.grad[...] = GRADS[1]
    opt.step()
    assert not np.array_equal(m, opt.state_dict()["slots"]["fc/kernel"]["m"])
    bad = {**state, "slots": {"fc/kernel": {"m": np.zeros(3), "v": np.zeros(3)}}}
    with pytest.raises(ValueError, match="fc/kernel 'm' has shape"):
        opt.load_state_dict(bad)
    with pytest.raises(ValueError, match="no entry for fc/kernel"):
        opt.load_state_dict({**state, "slots": {}})
    with pytest.raises(ValueError, match="'adam', not 'sgd'"):
        make_optimizer("sgd", [p], 0.1).load_state_dict(state)


def test_bad_settings_are_refused_with_a_reason():
    p = Param("fc", "kernel", P0.copy())
    with pytest.raises(ValueError, match="unknown optimizer 'lion'; choose one of sgd, adam"):
        make_optimizer("lion", [p], 0.1)
    with pytest.raises(ValueError, match="sgd has no setting beta1"):
        make_optimizer("sgd", [p], 0.1, beta1=0.9)
    with pytest.raises(ValueError, match="Nesterov"):
        make_optimizer("sgd", [p], 0.1, nesterov=True)
    with pytest.raises(ValueError, match="learning rate"):
        make_optimizer("adam", [p], -1.0)
    with pytest.raises(ValueError, match="beta2 must be in"):
        make_optimizer("adam", [p], 0.1, beta2=1.0)
    assert set(OPTIMIZERS) == {"sgd", "adam", "adamw", "rmsprop", "adagrad"}


def test_clip_grad_norm_scales_all_gradients_together():
    a = Param("conv", "kernel", np.zeros((2, 2)))
    b = Param("conv", "bias", np.zeros(2), decay=False)
    a.grad[...] = [[3.0, 0.0], [0.0, 0.0]]
    b.grad[...] = [0.0, 4.0]
    assert global_norm([a, b]) == pytest.approx(5.0)
    assert clip_grad_norm([a, b], 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose(a.grad, [[0.6, 0], [0, 0]], rtol=1e-5)
    np.testing.assert_allclose(b.grad, [0, 0.8], rtol=1e-5)
    assert clip_grad_norm([a, b], 10.0) == pytest.approx(1.0, rel=1e-5)  # under the limit: unchanged
    np.testing.assert_allclose(b.grad, [0, 0.8], rtol=1e-5)
    b.grad[0] = np.nan
    assert not np.isfinite(global_norm([a, b]))
