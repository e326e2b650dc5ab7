"""Optimizers that update each ``Parameter.value`` in place with one float32 numba kernel per array.

The update rules follow ``torch.optim`` (Adam's bias correction, AdamW's decoupled ``lr·wd·param``, RMSprop's
``alpha``, Nesterov as in SGD), so hyper-parameters carry over; ``state_dict`` makes a resumed run exact.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
from numba import njit

from .backend import on_device

_F = np.float32


# ----------------------------------------------------------------------------------------------- kernels
# Each kernel walks one flattened array once; ``wd`` is the L2 term added to the gradient (0 for no decay).
# error_model="numpy" drops Python's zero-division check, which would keep the loops from vectorising.

@njit(cache=True, nogil=True, fastmath=False, error_model="numpy")
def _sgd_kernel(p, g, buf, lr, wd, momentum, nesterov):
    for i in range(p.size):
        d = g[i] + wd * p[i]
        if momentum != 0:
            b = momentum * buf[i] + d
            buf[i] = b
            d = d + momentum * b if nesterov else b
        p[i] -= lr * d


@njit(cache=True, nogil=True, fastmath=False, error_model="numpy")
def _adam_kernel(p, g, m, v, step_size, beta1, beta2, eps, inv_sqrt_bc2, wd, shrink):
    one = np.float32(1)
    for i in range(p.size):
        p[i] *= shrink
        d = g[i] + wd * p[i]
        mi = beta1 * m[i] + (one - beta1) * d
        vi = beta2 * v[i] + (one - beta2) * d * d
        m[i] = mi
        v[i] = vi
        p[i] -= step_size * mi / (np.sqrt(vi) * inv_sqrt_bc2 + eps)


@njit(cache=True, nogil=True, fastmath=False, error_model="numpy")
def _rmsprop_kernel(p, g, sq, buf, lr, alpha, eps, wd, momentum):
    one = np.float32(1)
    for i in range(p.size):
        d = g[i] + wd * p[i]
        s = alpha * sq[i] + (one - alpha) * d * d
        sq[i] = s
        step = d / (np.sqrt(s) + eps)
        if momentum != 0:
            step = momentum * buf[i] + step
            buf[i] = step
        p[i] -= lr * step


@njit(cache=True, nogil=True, fastmath=False, error_model="numpy")
def _adagrad_kernel(p, g, acc, lr, eps, wd):
    for i in range(p.size):
        d = g[i] + wd * p[i]
        a = acc[i] + d * d
        acc[i] = a
        p[i] -= lr * d / (np.sqrt(a) + eps)


# ----------------------------------------------------------------------------------------------- optimizers

def _cpu_global_norm(grads) -> float:
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported as an infinite norm
        return math.sqrt(sum(float(np.dot(g, g)) for g in grads))


def _cpu_scale(arrays, s) -> None:
    for a in arrays:
        a *= s


_CPU_KERNELS = SimpleNamespace(sgd=_sgd_kernel, adam=_adam_kernel, rmsprop=_rmsprop_kernel, adagrad=_adagrad_kernel,
                               zeros_like=np.zeros_like, to_host=np.copy, from_host=lambda a: a,
                               global_norm=_cpu_global_norm, scale=_cpu_scale)


def _kernels(params):
    """The update kernels for where ``params`` live: the numba CPU ones above, or engine/cuda's for GPU arrays
    (same signatures, so the rules below run unchanged on both)."""
    if params and on_device(params[0].value):
        from .cuda import updates
        return updates
    return _CPU_KERNELS


def _flat(a: np.ndarray) -> np.ndarray:
    """A 1-D view of a parameter array; a copy would silently drop the update, so refuse non-contiguous arrays."""
    if on_device(a):
        return a.reshape(-1)  # device arrays are allocated contiguous by the CUDA backend
    if not a.flags.c_contiguous or a.dtype != np.float32:
        raise ValueError(f"optimizer arrays must be C-contiguous float32, got {a.dtype} with strides {a.strides}")
    return a.reshape(-1)


class Optimizer:
    """Shared bookkeeping: hyper-parameters, one zeroed slot array per (parameter, slot name), the step count."""

    kind = ""
    defaults: dict = {}
    default_lr = 1e-3  # a rate that trains the small templates well

    def __init__(self, params, lr: float, **hyper) -> None:
        unknown = sorted(set(hyper) - set(self.defaults))
        if unknown:
            raise ValueError(f"{self.kind} has no setting {', '.join(unknown)}; it takes lr, "
                             f"{', '.join(self.defaults)}")
        self.params = list(params)
        self.hyper = {**self.defaults, **hyper}
        self.lr = lr
        self._check()
        self.step_count = 0
        self._k = _kernels(self.params)
        self.slots = [{name: self._k.zeros_like(p.value) for name in self.slot_names(self.hyper)}
                      for p in self.params]

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        value = float(value)
        if not (value >= 0 and math.isfinite(value)):
            raise ValueError(f"the learning rate must be 0 or more, not {value:g}")
        self._lr = value

    def _check(self) -> None:
        if self.hyper["weight_decay"] < 0:
            raise ValueError(f"weight decay must be 0 or more, not {self.hyper['weight_decay']:g}")

    @staticmethod
    def slot_names(hyper: dict) -> tuple[str, ...]:
        """The per-parameter state arrays this rule keeps with these settings."""
        return ()

    def step(self) -> None:
        """One update of every parameter from its current ``grad`` (each rule's ``_update`` runs its kernel)."""
        self.step_count += 1
        self._prepare()
        for p, slots in zip(self.params, self.slots, strict=True):
            wd = _F(self.hyper["weight_decay"] if p.decay else 0.0)
            self._update(_flat(p.value), _flat(p.grad), slots, wd, p.decay)

    def _prepare(self) -> None:
        """Per-step scalars shared by all arrays (bias corrections...)."""

    def state_dict(self) -> dict:
        return {"kind": self.kind, "hyper": {"lr": self.lr, **self.hyper}, "step": self.step_count,
                "slots": {f"{p.block}/{p.name}": {k: self._k.to_host(v) for k, v in s.items()}
                          for p, s in zip(self.params, self.slots, strict=True)}}

    def load_state_dict(self, state: dict) -> None:
        """Restore hyper-parameters, step count and slots; a ValueError names what does not fit these parameters."""
        if state.get("kind") != self.kind:
            raise ValueError(f"optimizer state is for {state.get('kind')!r}, not {self.kind!r}")
        hyper = dict(state["hyper"])
        lr = hyper.pop("lr", self.lr)
        unknown = sorted(set(hyper) - set(self.defaults))
        if unknown:
            raise ValueError(f"{self.kind} state has unknown settings {', '.join(unknown)}")
        slots = state["slots"]
        new_slots = []
        for p in self.params:
            key = f"{p.block}/{p.name}"
            saved = slots.get(key)
            if saved is None:
                raise ValueError(f"optimizer state has no entry for {key}")
            entry = {}
            for name in self.slot_names({**self.defaults, **hyper}):
                if name not in saved:
                    raise ValueError(f"optimizer state for {key} lacks '{name}'")
                arr = np.asarray(saved[name])
                if arr.shape != p.value.shape:
                    raise ValueError(f"optimizer state {key} '{name}' has shape {arr.shape}, "
                                     f"but the parameter is {p.value.shape}")
                entry[name] = self._k.from_host(np.array(arr, dtype=np.float32, order="C"))
            new_slots.append(entry)
        self.hyper = {**self.defaults, **hyper}
        self.lr = lr
        self._check()
        self.step_count = int(state["step"])
        self.slots = new_slots

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.hyper.items())
        return f"{self.kind}(lr={self.lr:g}, {settings})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as ``torch.optim.SGD`` without dampening."""

    kind = "sgd"
    default_lr = 0.01
    defaults = {"momentum": 0.0, "nesterov": False, "weight_decay": 0.0}

    def _check(self) -> None:
        super()._check()
        if not 0 <= self.hyper["momentum"] < 1:
            raise ValueError(f"momentum must be in [0, 1), not {self.hyper['momentum']:g}")
        if self.hyper["nesterov"] and self.hyper["momentum"] == 0:
            raise ValueError("Nesterov momentum needs a momentum above 0")

    @staticmethod
    def slot_names(hyper: dict) -> tuple[str, ...]:
        return ("momentum",) if hyper["momentum"] else ()

    def _update(self, p, g, slots, wd, decay):
        buf = slots["momentum"].reshape(-1) if slots else p
        self._k.sgd(p, g, buf, _F(self.lr), wd, _F(self.hyper["momentum"]), bool(self.hyper["nesterov"]))


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; weight decay is the L2 term added to the gradient."""

    kind = "adam"
    defaults = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}
    decoupled = False

    def _check(self) -> None:
        super()._check()
        for b in ("beta1", "beta2"):
            if not 0 <= self.hyper[b] < 1:
                raise ValueError(f"{b} must be in [0, 1), not {self.hyper[b]:g}")
        if not self.hyper["eps"] > 0:
            raise ValueError(f"eps must be above 0, not {self.hyper['eps']:g}")

    @staticmethod
    def slot_names(hyper: dict) -> tuple[str, ...]:
        return "m", "v"

    def _prepare(self) -> None:
        h = self.hyper
        self._step_size = _F(self.lr / (1 - h["beta1"] ** self.step_count))
        self._inv_sqrt_bc2 = _F(1 / math.sqrt(1 - h["beta2"] ** self.step_count))

    def _update(self, p, g, slots, wd, decay):
        h = self.hyper
        shrink = _F(1 - self.lr * h["weight_decay"]) if self.decoupled and decay else _F(1)
        self._k.adam(p, g, slots["m"].reshape(-1), slots["v"].reshape(-1), self._step_size, _F(h["beta1"]),
                     _F(h["beta2"]), _F(h["eps"]), self._inv_sqrt_bc2, _F(0) if self.decoupled else wd, shrink)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``param -= lr·wd·param`` before the Adam step."""

    kind = "adamw"
    defaults = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01}
    decoupled = True


class RMSprop(Optimizer):
    """RMSprop: divide by a running RMS of the gradient (``alpha`` its smoothing), optionally with momentum."""

    kind = "rmsprop"
    defaults = {"alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "weight_decay": 0.0}

    def _check(self) -> None:
        super()._check()
        if not 0 <= self.hyper["alpha"] < 1:
            raise ValueError(f"alpha must be in [0, 1), not {self.hyper['alpha']:g}")
        if not 0 <= self.hyper["momentum"] < 1:
            raise ValueError(f"momentum must be in [0, 1), not {self.hyper['momentum']:g}")
        if not self.hyper["eps"] > 0:
            raise ValueError(f"eps must be above 0, not {self.hyper['eps']:g}")

    @staticmethod
    def slot_names(hyper: dict) -> tuple[str, ...]:
        return ("square_avg", "momentum") if hyper["momentum"] else ("square_avg",)

    def _update(self, p, g, slots, wd, decay):
        h = self.hyper
        buf = slots["momentum"].reshape(-1) if "momentum" in slots else p
        self._k.rmsprop(p, g, slots["square_avg"].reshape(-1), buf, _F(self.lr), _F(h["alpha"]), _F(h["eps"]), wd,
                        _F(h["momentum"]))


class Adagrad(Optimizer):
    """Adagrad: each weight's step shrinks with the sum of its squared gradients."""

    kind = "adagrad"
    default_lr = 0.01
    defaults = {"eps": 1e-10, "weight_decay": 0.0}

    def _check(self) -> None:
        super()._check()
        if not self.hyper["eps"] > 0:
            raise ValueError(f"eps must be above 0, not {self.hyper['eps']:g}")

    @staticmethod
    def slot_names(hyper: dict) -> tuple[str, ...]:
        return ("sum",)

    def _update(self, p, g, slots, wd, decay):
        self._k.adagrad(p, g, slots["sum"].reshape(-1), _F(self.lr), _F(self.hyper["eps"]), wd)


OPTIMIZERS: dict[str, type[Optimizer]] = {c.kind: c for c in (SGD, Adam, AdamW, RMSprop, Adagrad)}


def make_optimizer(kind: str, params, lr: float, **hyper) -> Optimizer:
    """The optimizer called ``kind`` (sgd, adam, adamw, rmsprop, adagrad) over ``params``; ValueError if unknown."""
    try:
        cls = OPTIMIZERS[kind.lower()]
    except KeyError:
        raise ValueError(f"unknown optimizer '{kind}'; choose one of {', '.join(OPTIMIZERS)}") from None
    return cls(params, lr, **hyper)


def global_norm(params) -> float:
    """The L2 norm of all gradients together (inf or nan when any gradient is)."""
    params = list(params)
    return _kernels(params).global_norm([_flat(p.grad) for p in params])


def clip_grad_norm(params, max_norm: float) -> float:
    """Scale all gradients so their global L2 norm is at most ``max_norm`` (as torch's clip_grad_norm_); returns the
    norm before clipping."""
    norm = global_norm(params)
    if norm > max_norm:
        params = list(params)
        _kernels(params).scale([p.grad for p in params], _F(max_norm / (norm + 1e-6)))
    return norm
