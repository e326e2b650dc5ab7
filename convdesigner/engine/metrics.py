"""How well a trained network does on labelled data (loss, accuracy, confusion matrix) and what it says about one
picture (its top classes): the numbers behind ``convdesigner eval`` and ``predict``."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.dataset import Dataset, batches


@dataclass
class Evaluation:
    loss: float
    accuracy: float
    confusion: np.ndarray  # int64 (classes, classes): row = true class, column = predicted (highest output) class


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
    loss_sum, right = 0.0, 0
    for x, labels in batches(data, batch_size):
        y = net.forward(x, training=False)
        loss_sum += float(net.loss(targets(net.loss_kind, labels, classes))) * len(labels)
        right += correct(net.loss_kind, y, labels)
        np.add.at(confusion, (labels, np.argmax(y, axis=1)), 1)
    return Evaluation(loss_sum / len(data), right / len(data), confusion)


def top_k(probabilities: np.ndarray, k: int = 5) -> list[tuple[int, float]]:
    """The ``k`` highest outputs of one sample as (class index, value), highest first; ties keep class order."""
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [(int(i), float(probabilities[i])) for i in order]
