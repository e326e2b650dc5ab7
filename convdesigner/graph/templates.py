"""The classic networks as graphs: full size (parameter counts equal to torchvision's) and small CPU-trainable variants.

Every builder returns a :class:`Graph` ending in a SoftmaxCrossEntropy head. Canvas positions are left at zero; the
designer lays templates out when it opens them.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .graph import Graph


class _Builder:
    """Chains blocks: each call adds one block fed by the given ids (default: the last block) and returns its id."""

    def __init__(self, channels: int, height: int, width: int, bn_eps: float = 1e-5) -> None:
        self.bn_eps = bn_eps  # torchvision's GoogLeNet and EfficientNet use 1e-3
        self.g = Graph()
        self.last = self.g.add("Input", "input", {"channels": channels, "height": height, "width": width}).id

    def add(self, kind: str, name: str | None = None, inputs: list[int] | None = None, **params) -> int:
        node = self.g.add(kind, name, params)
        for src in inputs if inputs is not None else [self.last]:
            self.g.connect(src, node.id)
        self.last = node.id
        return node.id

    def conv(self, name: str, filters: int, k: int, stride: int = 1, pad: int | None = None, bias: bool = True,
             groups: int = 1, src: int | None = None) -> int:
        pad = k // 2 if pad is None else pad
        return self.add("Conv2D", name, None if src is None else [src], filters=filters, kernel_h=k, kernel_w=k,
                        stride=stride, padding="explicit", pad_h=pad, pad_w=pad, groups=groups, bias=bias)

    def conv_bn(self, name: str, filters: int, k: int, stride: int = 1, act: str | None = "ReLU",
                src: int | None = None, groups: int = 1) -> int:
        """Conv without bias, BatchNorm, optional activation: the unit of every modern family."""
        self.conv(name, filters, k, stride, bias=False, groups=groups, src=src)
        self.add("BatchNorm", f"{name}_bn", eps=self.bn_eps)
        if act:
            self.add(act, f"{name}_{act.lower()}")
        return self.last

    def pool(self, kind: str, name: str, k: int, stride: int, pad: int = 0, ceil: bool = False,
             src: int | None = None) -> int:
        return self.add(kind, name, None if src is None else [src], pool_size=k, stride=stride, padding=pad,
                        ceil_mode=ceil)

    def classifier(self, hidden: list[int], classes: int, dropout: float = 0.5, flatten: bool = True,
                   dropout_first: bool = True) -> Graph:
        if flatten:
            self.add("Flatten", "flatten")
        for i, units in enumerate(hidden, start=1):
            if dropout and dropout_first:
                self.add("Dropout", f"drop{i}", rate=dropout)
            self.add("Dense", f"fc{i}", units=units)
            self.add("ReLU", f"fc{i}_relu")
            if dropout and not dropout_first:
                self.add("Dropout", f"drop{i}", rate=dropout)
        self.add("Dense", "fc_out" if hidden else "fc", units=classes)
        self.add("SoftmaxCrossEntropy", "loss")
        return self.g

    def pooled_head(self, classes: int, dropout: float = 0.0) -> Graph:
        """Global average pooling, optional dropout and the classifier: the ending of the modern families."""
        self.add("GlobalAvgPool2D", "avgpool")
        self.add("Flatten", "flatten")
        if dropout:
            self.add("Dropout", "dropout", rate=dropout)
        self.add("Dense", "fc", units=classes)
        self.add("SoftmaxCrossEntropy", "loss")
        return self.g


# ----------------------------------------------------------------------------------------------- families

def lenet5(classes: int = 10) -> Graph:
    """LeNet-5 for 1×28×28 digits: the first conv pads by 2 to recover the original 32×32 geometry."""
    b = _Builder(1, 28, 28)
    b.conv("conv1", 6, 5, pad=2)
    b.add("ReLU", "relu1")
    b.pool("MaxPool2D", "pool1", 2, 2)
    b.conv("conv2", 16, 5, pad=0)
    b.add("ReLU", "relu2")
    b.pool("MaxPool2D", "pool2", 2, 2)
    b.add("Flatten", "flatten")
    b.add("Dense", "fc1", units=120)
    b.add("ReLU", "relu3")
    b.add("Dense", "fc2", units=84)
    b.add("ReLU", "relu4")
    b.add("Dense", "fc3", units=classes)
    b.add("SoftmaxCrossEntropy", "loss")
    return b.g


def seed_cnn(classes: int = 10) -> Graph:
    """The seed example: 3×32×32 → two conv/pool stages → Dense 128 → Dropout → Dense 10."""
    b = _Builder(3, 32, 32)
    for i, f in enumerate((16, 32), start=1):
        b.conv(f"conv{i}", f, 3)
        b.add("ReLU", f"relu{i}")
        b.pool("MaxPool2D", f"pool{i}", 2, 2)
    b.add("Flatten", "flatten")
    b.add("Dense", "fc1", units=128)
    b.add("ReLU", "fc1_relu")
    b.add("Dropout", "dropout", rate=0.5)
    b.add("Dense", "fc2", units=classes)
    b.add("SoftmaxCrossEntropy", "loss")
    return b.g


def alexnet(classes: int = 1000, small: bool = False) -> Graph:
    if small:
        b = _Builder(3, 32, 32)
        plan = [(32, 5, 1, 2, True), (64, 5, 1, 2, True), (96, 3, 1, 1, False), (64, 3, 1, 1, False),
                (64, 3, 1, 1, True)]
    else:
        b = _Builder(3, 224, 224)
        plan = [(64, 11, 4, 2, True), (192, 5, 1, 2, True), (384, 3, 1, 1, False), (256, 3, 1, 1, False),
                (256, 3, 1, 1, True)]
    for i, (f, k, s, p, pool) in enumerate(plan, start=1):
        b.conv(f"conv{i}", f, k, s, p)
        b.add("ReLU", f"relu{i}")
        if pool:
            b.pool("MaxPool2D", f"pool{i}", 3 if not small else 2, 2)
    return b.classifier([128, 128] if small else [4096, 4096], classes)


_VGG = {"vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
        "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
        "small": [16, "M", 32, "M", 64, 64, "M", 64, "M"]}


def vgg(depth: str = "vgg16", classes: int = 1000) -> Graph:
    small = depth == "small"
    b = _Builder(3, 32, 32) if small else _Builder(3, 224, 224)
    stage, i = 1, 1
    for item in _VGG[depth]:
        if item == "M":
            b.pool("MaxPool2D", f"pool{stage}", 2, 2)
            stage, i = stage + 1, 1
        else:
            b.conv(f"conv{stage}_{i}", item, 3)
            b.add("ReLU", f"relu{stage}_{i}")
            i += 1
    return b.classifier([128] if small else [4096, 4096], classes, dropout_first=False)


def _inception(b: _Builder, name: str, c1: int, c3r: int, c3: int, c5r: int, c5: int, pp: int) -> int:
    """torchvision's Inception block (its '5×5' branch uses a 3×3 kernel, kept here for equal counts)."""
    src = b.last
    branches = [b.conv_bn(f"{name}_1x1", c1, 1, src=src)]
    b.conv_bn(f"{name}_3x3r", c3r, 1, src=src)
    branches.append(b.conv_bn(f"{name}_3x3", c3, 3))
    b.conv_bn(f"{name}_5x5r", c5r, 1, src=src)
    branches.append(b.conv_bn(f"{name}_5x5", c5, 3))
    b.pool("MaxPool2D", f"{name}_pool", 3, 1, 1, ceil=True, src=src)
    branches.append(b.conv_bn(f"{name}_poolproj", pp, 1))
    return b.add("Concat", f"{name}_concat", branches)


def googlenet(classes: int = 1000, small: bool = False) -> Graph:
    if small:
        b = _Builder(3, 32, 32, bn_eps=1e-3)
        b.conv_bn("conv1", 32, 3)
        b.pool("MaxPool2D", "pool1", 2, 2)
        _inception(b, "inc3a", 16, 16, 24, 4, 8, 8)
        _inception(b, "inc3b", 24, 24, 32, 8, 16, 16)
        b.pool("MaxPool2D", "pool3", 2, 2)
        _inception(b, "inc4a", 32, 24, 48, 8, 16, 16)
    else:
        b = _Builder(3, 224, 224, bn_eps=1e-3)
        b.conv_bn("conv1", 64, 7, 2)
        b.pool("MaxPool2D", "pool1", 3, 2, ceil=True)
        b.conv_bn("conv2", 64, 1)
        b.conv_bn("conv3", 192, 3)
        b.pool("MaxPool2D", "pool2", 3, 2, ceil=True)
        _inception(b, "inc3a", 64, 96, 128, 16, 32, 32)
        _inception(b, "inc3b", 128, 128, 192, 32, 96, 64)
        b.pool("MaxPool2D", "pool3", 3, 2, ceil=True)
        for name, cfg in (("inc4a", (192, 96, 208, 16, 48, 64)), ("inc4b", (160, 112, 224, 24, 64, 64)),
                          ("inc4c", (128, 128, 256, 24, 64, 64)), ("inc4d", (112, 144, 288, 32, 64, 64)),
                          ("inc4e", (256, 160, 320, 32, 128, 128))):
            _inception(b, name, *cfg)
        b.pool("MaxPool2D", "pool4", 2, 2, ceil=True)
        _inception(b, "inc5a", 256, 160, 320, 32, 128, 128)
        _inception(b, "inc5b", 384, 192, 384, 48, 128, 128)
    return b.pooled_head(classes, dropout=0.2)


def _basic_block(b: _Builder, name: str, cin: int, filters: int, stride: int) -> int:
    src = b.last
    b.conv_bn(f"{name}_conv1", filters, 3, stride)
    main = b.conv_bn(f"{name}_conv2", filters, 3, act=None)
    short = _shortcut(b, name, src, cin, filters, stride)
    b.add("Add", f"{name}_add", [main, short])
    return b.add("ReLU", f"{name}_relu")


def _bottleneck(b: _Builder, name: str, cin: int, width: int, stride: int) -> int:
    src = b.last
    b.conv_bn(f"{name}_conv1", width, 1)
    b.conv_bn(f"{name}_conv2", width, 3, stride)
    main = b.conv_bn(f"{name}_conv3", width * 4, 1, act=None)
    short = _shortcut(b, name, src, cin, width * 4, stride)
    b.add("Add", f"{name}_add", [main, short])
    return b.add("ReLU", f"{name}_relu")


def _shortcut(b: _Builder, name: str, src: int, cin: int, filters: int, stride: int) -> int:
    if stride == 1 and cin == filters:
        return src
    return b.conv_bn(f"{name}_down", filters, 1, stride, act=None, src=src)


def resnet(depth: int = 18, classes: int = 1000, small: bool = False) -> Graph:
    blocks = {18: (2, 2, 2, 2), 50: (3, 4, 6, 3), 8: (1, 1, 1)}[depth]
    block, expansion = (_bottleneck, 4) if depth == 50 else (_basic_block, 1)
    if small:
        b = _Builder(3, 32, 32)
        b.conv_bn("conv1", 16, 3)
        widths, cin = (16, 32, 64), 16
    else:
        b = _Builder(3, 224, 224)
        b.conv_bn("conv1", 64, 7, 2)
        b.pool("MaxPool2D", "pool1", 3, 2, 1)
        widths, cin = (64, 128, 256, 512), 64
    for stage, (n, w) in enumerate(zip(blocks, widths, strict=True), start=1):
        for i in range(n):
            block(b, f"layer{stage}_{i + 1}", cin, w, 2 if i == 0 and stage > 1 else 1)
            cin = w * expansion
    return b.pooled_head(classes)


def densenet(classes: int = 1000, small: bool = False) -> Graph:
    """DenseNet-121 (growth 32, blocks 6-12-24-16); each dense layer concatenates onto the running features."""
    growth, blocks, init = (12, (3, 3, 3), 24) if small else (32, (6, 12, 24, 16), 64)
    if small:
        b = _Builder(3, 32, 32)
        b.conv("conv0", init, 3, bias=False)
    else:
        b = _Builder(3, 224, 224)
        b.conv_bn("conv0", init, 7, 2)
        b.pool("MaxPool2D", "pool0", 3, 2, 1)
    channels = init
    for bi, n in enumerate(blocks, start=1):
        for li in range(1, n + 1):
            name = f"block{bi}_layer{li}"
            src = b.last
            b.add("BatchNorm", f"{name}_bn1")
            b.add("ReLU", f"{name}_relu1")
            b.conv(f"{name}_conv1", 4 * growth, 1, bias=False)
            b.add("BatchNorm", f"{name}_bn2")
            b.add("ReLU", f"{name}_relu2")
            new = b.conv(f"{name}_conv2", growth, 3, bias=False)
            b.add("Concat", f"{name}_concat", [src, new])
            channels += growth
        if bi < len(blocks):
            channels //= 2
            b.add("BatchNorm", f"trans{bi}_bn")
            b.add("ReLU", f"trans{bi}_relu")
            b.conv(f"trans{bi}_conv", channels, 1, bias=False)
            b.pool("AvgPool2D", f"trans{bi}_pool", 2, 2)
    b.add("BatchNorm", "norm5")
    b.add("ReLU", "relu5")
    return b.pooled_head(classes)


_EFFICIENTNET_B0 = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
                    (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]


def _mbconv(b: _Builder, name: str, cin: int, cout: int, expand: int, k: int, stride: int) -> int:
    """Mobile inverted bottleneck with squeeze-excitation (squeeze to a quarter of the block's input channels)."""
    src = b.last
    wide = cin * expand
    if expand != 1:
        b.conv_bn(f"{name}_expand", wide, 1, act="SiLU")
    x = b.conv_bn(f"{name}_dw", wide, k, stride, act="SiLU", groups=wide)
    b.add("GlobalAvgPool2D", f"{name}_se_pool")
    b.conv(f"{name}_se_reduce", max(1, cin // 4), 1)
    b.add("SiLU", f"{name}_se_silu")
    b.conv(f"{name}_se_expand", wide, 1)
    gate = b.add("Sigmoid", f"{name}_se_gate")
    b.add("Multiply", f"{name}_se_scale", [x, gate])
    out = b.conv_bn(f"{name}_project", cout, 1, act=None)
    if stride == 1 and cin == cout:
        out = b.add("Add", f"{name}_add", [out, src])
    return out


def efficientnet(classes: int = 1000, small: bool = False) -> Graph:
    if small:
        b = _Builder(3, 32, 32, bn_eps=1e-3)
        b.conv_bn("stem", 16, 3, 1, act="SiLU")
        plan, head = [(1, 3, 1, 16, 1), (4, 3, 2, 24, 2), (4, 5, 2, 40, 1), (4, 3, 2, 64, 1)], 256
    else:
        b = _Builder(3, 224, 224, bn_eps=1e-3)
        b.conv_bn("stem", 32, 3, 2, act="SiLU")
        plan, head = _EFFICIENTNET_B0, 1280
    cin = 16 if small else 32
    for si, (expand, k, stride, cout, n) in enumerate(plan, start=1):
        for i in range(n):
            _mbconv(b, f"stage{si}_{i + 1}", cin, cout, expand, k, stride if i == 0 else 1)
            cin = cout
    b.conv_bn("head", head, 1, act="SiLU")
    return b.pooled_head(classes, dropout=0.2)


# ----------------------------------------------------------------------------------------------- registry

# Training settings that work for a template (engine/settings.py names them): the training panel starts from these.
# LeNet-5 on the MNIST sample: 97.45–98.20 % validation accuracy in 5 epochs over seeds 0–6 (README).
_DIGITS = {"data": "mnist-sample", "optimizer": "adam", "lr": 2e-3, "batch_size": 32, "schedule": "cosine",
           "augment": "shift=2,rotate=10", "epochs": 5}
_COLOUR = {"data": "shapes", "optimizer": "adam", "batch_size": 64, "epochs": 5}


@dataclass(frozen=True)
class Template:
    key: str
    title: str
    build: Callable[[], Graph]
    small: bool  # trains on a CPU in minutes
    description: str

    @property
    def recipe(self) -> dict:
        """Recommended training settings: the digit recipe for 1-channel inputs, the shapes set for small colour
        networks, nothing for the full-size ones (they need data of their own)."""
        if not self.small:
            return {}
        channels = self.build().inputs()[0].params["channels"]
        return dict(_DIGITS if channels == 1 else _COLOUR)


TEMPLATES: dict[str, Template] = {t.key: t for t in [
    Template("lenet5", "LeNet-5", lenet5, True, "LeCun's digit recogniser, 1×28×28 → 10 classes"),
    Template("seed-cnn", "Seed example CNN", seed_cnn, True, "Two conv/pool stages on 3×32×32 → 10 classes"),
    Template("alexnet", "AlexNet", alexnet, False, "Krizhevsky et al. 2012, 3×224×224 → 1000 classes"),
    Template("alexnet-small", "AlexNet (small)", lambda: alexnet(10, small=True), True, "AlexNet shape, 3×32×32"),
    Template("vgg11", "VGG-11", lambda: vgg("vgg11"), False, "Simonyan & Zisserman 2014, configuration A"),
    Template("vgg16", "VGG-16", lambda: vgg("vgg16"), False, "Simonyan & Zisserman 2014, configuration D"),
    Template("vgg-small", "VGG (small)", lambda: vgg("small", 10), True, "Stacked 3×3 convs, 3×32×32"),
    Template("googlenet", "GoogLeNet", googlenet, False, "Inception v1 (torchvision, no auxiliary heads)"),
    Template("googlenet-small", "GoogLeNet (small)", lambda: googlenet(10, small=True), True,
             "Three Inception blocks, 3×32×32"),
    Template("resnet18", "ResNet-18", lambda: resnet(18), False, "He et al. 2015, basic blocks"),
    Template("resnet50", "ResNet-50", lambda: resnet(50), False, "He et al. 2015, bottleneck blocks"),
    Template("resnet-small", "ResNet (small)", lambda: resnet(8, 10, small=True), True,
             "Three residual stages, 3×32×32"),
    Template("densenet121", "DenseNet-121", densenet, False, "Huang et al. 2017, growth rate 32"),
    Template("densenet-small", "DenseNet (small)", lambda: densenet(10, small=True), True,
             "Three dense blocks of 3 layers, growth 12, 3×32×32"),
    Template("efficientnet-b0", "EfficientNet-B0", efficientnet, False, "Tan & Le 2019, MBConv + squeeze-excitation"),
    Template("efficientnet-small", "EfficientNet (small)", lambda: efficientnet(10, small=True), True,
             "Four MBConv stages, 3×32×32"),
]}


def build(key: str) -> Graph:
    """The template called ``key`` as a fresh graph, or a KeyError listing the template names."""
    try:
        return TEMPLATES[key].build()
    except KeyError:
        raise KeyError(f"unknown template '{key}'; choose one of {', '.join(TEMPLATES)}") from None
