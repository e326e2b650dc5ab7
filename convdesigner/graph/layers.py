"""The layer catalogue: one declaration per layer kind, read by palette, inspector, engine, model files and exporter.

Shapes are per sample, ``(C, H, W)`` for images and ``(F,)`` for flat vectors; the batch axis is added at run time.
A shape rule raises :class:`ShapeError` with a message a user can act on; the graph prefixes it with the block's name.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Shape = tuple[int, ...]


class ShapeError(ValueError):
    """A layer cannot accept its input shapes with its current parameters."""


class ParamError(ValueError):
    """A parameter value is of the wrong type or outside its allowed range."""


@dataclass(frozen=True)
class Param:
    """A typed parameter spec: the inspector builds its form from these and :meth:`check` guards every edit."""

    name: str
    type: type  # int, float, bool or str (str params always have choices)
    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None
    enabled_when: tuple[str, Any] | None = None  # (other param, value): only then does this one matter

    def applies(self, params: dict[str, Any]) -> bool:
        """Whether this parameter has an effect with the other ``params`` (the inspector greys it out otherwise)."""
        return self.enabled_when is None or params.get(self.enabled_when[0]) == self.enabled_when[1]

    def check(self, value: Any) -> Any:
        """Return ``value`` converted to this spec's type, or raise :class:`ParamError` saying what is allowed."""
        if self.type is bool:
            if not isinstance(value, (bool, int)) or (isinstance(value, int) and value not in (0, 1)):
                raise ParamError(f"'{self.name}' must be true or false, not {value!r}")
            return bool(value)
        if self.type is str:
            if value not in (self.choices or ()):
                raise ParamError(f"'{self.name}' must be one of {', '.join(self.choices or ())}, not {value!r}")
            return str(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamError(f"'{self.name}' must be a number, not {value!r}")
        if self.type is int:
            if float(value) != int(value):
                raise ParamError(f"'{self.name}' must be a whole number, not {value!r}")
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise ParamError(f"'{self.name}' must be a finite number, not {value!r}")
        if self.min is not None and value < self.min:
            raise ParamError(f"'{self.name}' must be at least {self.min:g}, not {value:g}")
        if self.max is not None and value > self.max:
            raise ParamError(f"'{self.name}' must be at most {self.max:g}, not {value:g}")
        return value


@dataclass(frozen=True)
class LayerKind:
    """One kind of block: its parameters, arity, and the rules for its shape, learnable arrays and cost."""

    name: str
    category: str
    help: str
    params: tuple[Param, ...]
    output_shape: Callable[[dict, list[Shape]], Shape]
    min_inputs: int = 1
    max_inputs: int | None = 1  # None: any number (Add, Concat)
    weight_shapes: Callable[[dict, list[Shape]], dict[str, Shape]] = field(default=lambda p, s: {})
    state_shapes: Callable[[dict, list[Shape]], dict[str, Shape]] = field(default=lambda p, s: {})
    macs: Callable[[dict, list[Shape], Shape], int] = field(default=lambda p, s, o: 0)
    is_loss: bool = False  # an output head: the graph's end, where the loss is taken
    short_name: str = ""  # stem of new block names ("conv" gives conv1, conv2...); the kind in lower case if empty

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(f"{self.name} has no parameter '{name}'")

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def checked_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Defaults overlaid with ``params``, every value checked; unknown names are refused."""
        names = {p.name for p in self.params}
        unknown = sorted(set(params) - names)
        if unknown:
            raise ParamError(f"{self.name} has no parameter {', '.join(repr(u) for u in unknown)}")
        out = self.defaults()
        for p in self.params:
            if p.name in params:
                out[p.name] = p.check(params[p.name])
        return out

    def param_count(self, params: dict, input_shapes: list[Shape]) -> int:
        return sum(math.prod(s) for s in self.weight_shapes(params, input_shapes).values())


# ----------------------------------------------------------------------------------------------- shape helpers

def fmt(shape: Shape) -> str:
    """A shape the way the canvas shows it: ``16×28×28``."""
    return "×".join(str(d) for d in shape)


def _image(kind: str, shapes: list[Shape]) -> Shape:
    s = shapes[0]
    if len(s) != 3:
        raise ShapeError(f"{kind} needs an image input (channels×height×width) but gets a flat {fmt(s)} vector; "
                         f"move it before the Flatten block")
    return s


def _flat(kind: str, shapes: list[Shape]) -> Shape:
    s = shapes[0]
    if len(s) != 1:
        raise ShapeError(f"{kind} needs a flat vector but gets {fmt(s)}; insert a Flatten block before it")
    return s


def conv_padding(params: dict, in_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """Padding (top, bottom, left, right) of a Conv2D: 'same' keeps ceil(size/stride), split as evenly as possible."""
    kh, kw, d = params["kernel_h"], params["kernel_w"], params["dilation"]
    if params["padding"] == "valid":
        return 0, 0, 0, 0
    if params["padding"] == "explicit":
        return params["pad_h"], params["pad_h"], params["pad_w"], params["pad_w"]
    s = params["stride"]
    pads = []
    for size, k in ((in_hw[0], kh), (in_hw[1], kw)):
        total = max((math.ceil(size / s) - 1) * s + d * (k - 1) + 1 - size, 0)
        pads += [total // 2, total - total // 2]
    return pads[0], pads[1], pads[2], pads[3]


def _conv_shape(p: dict, shapes: list[Shape]) -> Shape:
    c, h, w = _image("Conv2D", shapes)
    kh, kw, d, s, g = p["kernel_h"], p["kernel_w"], p["dilation"], p["stride"], p["groups"]
    if c % g or p["filters"] % g:
        raise ShapeError(f"groups={g} must divide both the {c} input channels and the {p['filters']} filters; "
                         f"choose a common divisor (groups={c} with filters a multiple of {c} is depthwise)")
    top, bottom, left, right = conv_padding(p, (h, w))
    eh, ew = d * (kh - 1) + 1, d * (kw - 1) + 1
    if eh > h + top + bottom or ew > w + left + right:
        raise ShapeError(f"kernel {kh}×{kw}{' dilated ' + str(d) if d > 1 else ''} is larger than its "
                         f"{h}×{w} input; lower the kernel or add padding")
    return p["filters"], (h + top + bottom - eh) // s + 1, (w + left + right - ew) // s + 1


def _conv_weights(p: dict, shapes: list[Shape]) -> dict[str, Shape]:
    c = shapes[0][0]
    w = {"kernel": (p["filters"], c // p["groups"], p["kernel_h"], p["kernel_w"])}
    if p["bias"]:
        w["bias"] = (p["filters"],)
    return w


def _conv_macs(p: dict, shapes: list[Shape], out: Shape) -> int:
    return math.prod(out) * (shapes[0][0] // p["groups"]) * p["kernel_h"] * p["kernel_w"]


def pool_output(size: int, k: int, stride: int, pad: int, ceil_mode: bool) -> int:
    """Pooled length along one axis, PyTorch's rule (a ceil-mode window must start inside input or left padding)."""
    span = size + 2 * pad - k
    n = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (n - 1) * stride >= size + pad:
        n -= 1
    return n


def _pool_shape(kind: str) -> Callable[[dict, list[Shape]], Shape]:
    def rule(p: dict, shapes: list[Shape]) -> Shape:
        c, h, w = _image(kind, shapes)
        k, pad = p["pool_size"], p["padding"]
        s = p["stride"] or k
        if pad > k // 2:
            raise ShapeError(f"padding {pad} is more than half the {k}×{k} window; use padding ≤ {k // 2}")
        if k > h + 2 * pad or k > w + 2 * pad:
            raise ShapeError(f"window {k}×{k} is larger than its {h}×{w} input; lower pool_size or add padding")
        return c, pool_output(h, k, s, pad, p["ceil_mode"]), pool_output(w, k, s, pad, p["ceil_mode"])
    return rule


def _same(p: dict, shapes: list[Shape]) -> Shape:
    return shapes[0]


def _per_channel(p: dict, shapes: list[Shape]) -> dict[str, Shape]:
    return {"slope": (shapes[0][0],)}


def _dense_shape(p: dict, shapes: list[Shape]) -> Shape:
    _flat("Dense", shapes)
    return (p["units"],)


def _dense_weights(p: dict, shapes: list[Shape]) -> dict[str, Shape]:
    w = {"kernel": (p["units"], shapes[0][0])}
    if p["bias"]:
        w["bias"] = (p["units"],)
    return w


def _add_shape(p: dict, shapes: list[Shape]) -> Shape:
    first = shapes[0]
    for i, s in enumerate(shapes[1:], start=2):
        if s != first:
            raise ShapeError(f"input {i} is {fmt(s)} but input 1 is {fmt(first)}; Add needs identical shapes "
                             f"(adjust channels with a 1×1 Conv2D or match the strides)")
    return first


def _concat_shape(p: dict, shapes: list[Shape]) -> Shape:
    first = shapes[0]
    for i, s in enumerate(shapes[1:], start=2):
        if len(s) != len(first) or s[1:] != first[1:]:
            what = "height×width" if len(first) == 3 else "rank"
            raise ShapeError(f"input {i} is {fmt(s)} but input 1 is {fmt(first)}; Concat joins channels and needs "
                             f"the same {what} on every input (match the pooling or padding of the branches)")
    return (sum(s[0] for s in shapes),) + tuple(first[1:])


def _multiply_shape(p: dict, shapes: list[Shape]) -> Shape:
    a, b = shapes
    if a == b:
        return a
    for big, small in ((a, b), (b, a)):
        if len(big) == 3 and small in ((big[0], 1, 1), (big[0],)):
            return big
    raise ShapeError(f"inputs {fmt(a)} and {fmt(b)} differ; Multiply needs equal shapes or a C×1×1 gate "
                     f"for a C×H×W input (squeeze-excitation)")


def _batchnorm_weights(p: dict, shapes: list[Shape]) -> dict[str, Shape]:
    return {"gamma": (shapes[0][0],), "beta": (shapes[0][0],)}


def _batchnorm_state(p: dict, shapes: list[Shape]) -> dict[str, Shape]:
    return {"running_mean": (shapes[0][0],), "running_var": (shapes[0][0],)}


def _class_scores(p: dict, shapes: list[Shape]) -> Shape:
    if _flat("SoftmaxCrossEntropy", shapes)[0] < 2:
        raise ShapeError("needs at least 2 class scores; give the Dense before it units = number of classes")
    return shapes[0]


def _elements(p: dict, shapes: list[Shape], out: Shape) -> int:
    return math.prod(out)


# ----------------------------------------------------------------------------------------------- the catalogue

def _p_int(name, default, help, lo=None, hi=None):
    return Param(name, int, default, help, lo, hi)


def _p_float(name, default, help, lo=None, hi=None):
    return Param(name, float, default, help, lo, hi)


def _pool_kind(name: str, help: str, pad_help: str, short_name: str) -> LayerKind:
    return LayerKind(
        name, "Pooling", help,
        (_p_int("pool_size", 2, "Window size", 1, 64),
         _p_int("stride", 0, "Step between windows (0: same as pool_size)", 0, 64),
         _p_int("padding", 0, pad_help, 0, 32),
         Param("ceil_mode", bool, False, "Round the output size up")),
        _pool_shape(name), macs=lambda p, s, o: math.prod(o) * p["pool_size"] ** 2, short_name=short_name)


_ALPHA = _p_float("alpha", 0.01, "Slope for negative inputs", 0.0, 10.0)

KINDS: dict[str, LayerKind] = {k.name: k for k in [
    LayerKind(
        "Input", "Input", "Where images enter the network: channels × height × width.",
        (_p_int("channels", 1, "Colour channels (1 grey, 3 RGB)", 1, 4096),
         _p_int("height", 28, "Image height in pixels", 1, 4096),
         _p_int("width", 28, "Image width in pixels", 1, 4096)),
        lambda p, s: (p["channels"], p["height"], p["width"]), min_inputs=0, max_inputs=0),
    LayerKind(
        "Conv2D", "Convolution", "2-D convolution: slides learned filters over the image.",
        (_p_int("filters", 16, "Number of output channels", 1, 65536),
         _p_int("kernel_h", 3, "Kernel height", 1, 64),
         _p_int("kernel_w", 3, "Kernel width", 1, 64),
         _p_int("stride", 1, "Step between filter positions", 1, 64),
         Param("padding", str, "same", "valid: none; same: keep size (÷ stride); explicit: pad_h/pad_w",
               choices=("valid", "same", "explicit")),
         Param("pad_h", int, 0, "Rows of zeros above and below (explicit padding)", 0, 64,
               enabled_when=("padding", "explicit")),
         Param("pad_w", int, 0, "Columns of zeros left and right (explicit padding)", 0, 64,
               enabled_when=("padding", "explicit")),
         _p_int("dilation", 1, "Spacing between kernel taps", 1, 64),
         _p_int("groups", 1, "Channel groups (= input channels for depthwise)", 1, 65536),
         Param("bias", bool, True, "Add a learned bias per filter")),
        _conv_shape, weight_shapes=_conv_weights, macs=_conv_macs, short_name="conv"),
    _pool_kind("MaxPool2D", "Keeps the largest value in each window.", "Padding on every side", "pool"),
    _pool_kind("AvgPool2D", "Averages each window.", "Padding on every side (counted as zeros in the average)",
               "avgpool"),
    LayerKind(
        "GlobalAvgPool2D", "Pooling", "Averages each channel over the whole image, giving C×1×1.",
        (), lambda p, s: (_image("GlobalAvgPool2D", s)[0], 1, 1), macs=lambda p, s, o: math.prod(s[0]),
        short_name="gap"),
    LayerKind(
        "Flatten", "Reshape", "Turns a C×H×W image into a flat vector for Dense layers.",
        (), lambda p, s: (math.prod(s[0]),)),
    LayerKind(
        "Dense", "Dense", "Fully connected layer: every output sees every input.",
        (_p_int("units", 10, "Number of outputs", 1, 1 << 20),
         Param("bias", bool, True, "Add a learned bias per unit")),
        _dense_shape, weight_shapes=_dense_weights, macs=lambda p, s, o: o[0] * s[0][0]),
    LayerKind("ReLU", "Activation", "max(0, x).", (), _same, macs=_elements),
    LayerKind("LeakyReLU", "Activation", "x for x > 0, alpha·x otherwise.", (_ALPHA,), _same,
              macs=_elements),
    LayerKind("PReLU", "Activation", "Leaky ReLU whose negative slope is learned per channel.", (),
              _same, weight_shapes=_per_channel, macs=_elements),
    LayerKind("ELU", "Activation", "x for x > 0, alpha·(exp(x) − 1) otherwise.",
              (_p_float("alpha", 1.0, "Saturation value for negative inputs", 0.0, 10.0),), _same,
              macs=_elements),
    LayerKind("SiLU", "Activation", "x · sigmoid(x) (swish), used by EfficientNet.", (), _same,
              macs=_elements),
    LayerKind("Sigmoid", "Activation", "1 / (1 + exp(−x)), squashes to (0, 1).", (), _same,
              macs=_elements),
    LayerKind("Tanh", "Activation", "Hyperbolic tangent, squashes to (−1, 1).", (), _same, macs=_elements),
    LayerKind("Softmax", "Activation", "Turns scores into probabilities over the channel axis.", (),
              _same, macs=_elements),
    LayerKind(
        "Dropout", "Regularisation", "Zeroes a random fraction of values while training (inverted dropout).",
        (_p_float("rate", 0.5, "Fraction of values dropped", 0.0, 0.99),), _same),
    LayerKind(
        "BatchNorm", "Normalisation",
        "Normalises each channel (images) or feature (vectors) over the batch, then scales and shifts.",
        (_p_float("momentum", 0.1, "Weight of the newest batch in the running statistics", 0.0, 1.0),
         _p_float("eps", 1e-5, "Added to the variance for stability", 1e-12, 1.0)),
        _same, weight_shapes=_batchnorm_weights, state_shapes=_batchnorm_state, macs=_elements,
        short_name="bn"),
    LayerKind("Add", "Merge", "Element-wise sum of its inputs (residual connections).", (), _add_shape,
              min_inputs=2, max_inputs=None, macs=lambda p, s, o: math.prod(o) * (len(s) - 1)),
    LayerKind("Concat", "Merge", "Joins its inputs along the channel axis.", (), _concat_shape,
              min_inputs=2, max_inputs=None),
    LayerKind("Multiply", "Merge", "Element-wise product; a C×1×1 input gates a C×H×W one (squeeze-excitation).",
              (), _multiply_shape, min_inputs=2, max_inputs=2, macs=_elements),
    LayerKind(
        "SoftmaxCrossEntropy", "Output", "Classification head: softmax over class scores, cross-entropy loss.",
        (_p_float("label_smoothing", 0.0, "Share of the target spread over all classes", 0.0, 0.99),),
        _class_scores, is_loss=True, short_name="loss"),
    LayerKind("SigmoidBCE", "Output", "Multi-label head: a sigmoid per output, binary cross-entropy loss.", (),
              _same, is_loss=True, short_name="loss"),
    LayerKind("MSE", "Output", "Regression head: mean squared error against the targets.", (),
              _same, is_loss=True, short_name="loss"),
]}

CATEGORIES: tuple[str, ...] = tuple(dict.fromkeys(k.category for k in KINDS.values()))


def kind(name: str) -> LayerKind:
    """The declaration of a layer kind, or a KeyError naming the kinds that exist."""
    try:
        return KINDS[name]
    except KeyError:
        raise KeyError(f"unknown layer kind '{name}'; known kinds: {', '.join(KINDS)}") from None
