"""How well a trained network does on labelled data (loss, accuracy, confusion matrix) and what it says about one
picture (its top classes): the numbers behind ``convdesigner eval`` and ``predict``."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..data.dataset import Dataset, batches


@dataclass
class Evaluation:
    loss: float
    accuracy: float
    confusion: np.ndarray  # int64 (classes, classes): row = true class, column = predicted (highest output) class
    labels: np.ndarray | None = None  # per image, in the data's order: its true class
    predicted: np.ndarray | None = None  # the class with the highest output
    confidence: np.ndarray | None = None  # the head's probability (or output) for that class

    def cell(self, true_class: int, predicted_class: int) -> np.ndarray:
        """Indices of the images in one confusion-matrix cell: a wrong cell's most confident mistakes first, a right
        cell's least confident answers first (the ones nearest to being wrong)."""
        index = np.flatnonzero((self.labels == true_class) & (self.predicted == predicted_class))
        order = np.argsort(self.confidence[index], kind="stable")
        return index[order[::-1]] if true_class != predicted_class else index[order]


def smoothed(values: np.ndarray, weight: float, state: tuple[float, int] = (0.0, 0)) -> tuple[np.ndarray, tuple]:
    """TensorBoard's smoothing: an exponential moving average with bias correction, so the first points are not
    dragged towards zero; NaN points are skipped. ``weight`` 0 returns the values, 0.99 a very smooth line. Returns
    the smoothed values and the state to pass with the next values, so a growing curve is smoothed once per point."""
    out = np.empty(len(values), np.float64)
    average, count = state
    for i, v in enumerate(values.tolist()):
        if v == v and abs(v) != math.inf:
            average = average * weight + (1 - weight) * v
            count += 1
        out[i] = average / (1 - weight ** count) if count else math.nan
    return out, (average, count)


def targets(loss_kind: str, labels: np.ndarray, classes: int) -> np.ndarray:
    """What the head's loss compares with: the labels for SoftmaxCrossEntropy, one-hot float32 rows otherwise."""
    if loss_kind == "SoftmaxCrossEntropy":
        return labels
    onehot = np.zeros((len(labels), classes), np.float32)
    onehot[np.arange(len(labels)), labels] = 1
    return onehot


def correct(loss_kind: str, outputs: np.ndarray, labels: np.ndarray) -> int:
    """Right answers: the highest output is the label, or for SigmoidBCE every output is on the right side of 0.5."""
    if loss_kind == "SigmoidBCE":
        return int(np.sum(np.all((outputs > 0) == (targets(loss_kind, labels, outputs.shape[1]) > 0.5), axis=1)))
    return int(np.count_nonzero(np.argmax(outputs, axis=1) == labels))


def evaluate(net, data: Dataset, batch_size: int = 256) -> Evaluation:
    """Mean loss, accuracy and confusion matrix of ``net`` in inference mode over all of ``data``."""
    classes = int(np.prod(net.output_shape))
    if classes != data.num_classes:
        raise ValueError(f"the network has {classes} outputs but '{data.name}' has {data.num_classes} classes")
    if len(data) == 0:
        raise ValueError(f"'{data.name}' holds no images to evaluate")
    confusion = np.zeros((classes, classes), np.int64)
    predicted, confidence = np.empty(len(data), np.int64), np.empty(len(data), np.float32)
    loss_sum, right, start = 0.0, 0, 0
    for x, labels in batches(data, batch_size):
        y = net.forward(x, training=False)
        loss_sum += float(net.loss(targets(net.loss_kind, labels, classes))) * len(labels)
        right += correct(net.loss_kind, y, labels)
        flat = y.reshape(len(y), -1)
        best = np.argmax(flat, axis=1)
        np.add.at(confusion, (labels, best), 1)
        predicted[start:start + len(y)] = best
        confidence[start:start + len(y)] = net.head.proba(flat)[np.arange(len(y)), best]
        start += len(y)
    return Evaluation(loss_sum / len(data), right / len(data), confusion, data.labels.copy(), predicted, confidence)


def top_k(probabilities: np.ndarray, k: int = 5) -> list[tuple[int, float]]:
    """The ``k`` highest outputs of one sample as (class index, value), highest first; ties keep class order."""
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [(int(i), float(probabilities[i])) for i in order]
