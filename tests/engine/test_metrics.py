"""Evaluation numbers behind `convdesigner eval`/`predict`, checked on networks whose outputs are known."""
import numpy as np
import pytest

from convdesigner.data.dataset import Dataset
from convdesigner.engine.metrics import correct, evaluate, targets, top_k


class FixedNet:
    """Returns preset outputs (logits) for its inputs, in order, and the softmax cross-entropy of them."""

    def __init__(self, outputs, loss_kind="SoftmaxCrossEntropy"):
        self.outputs, self.loss_kind, self.output_shape = np.asarray(outputs, np.float32), loss_kind, (3,)
        self.at = 0

    class head:  # noqa: N801 - what ``evaluate`` asks of the loss block
        @staticmethod
        def proba(y):
            e = np.exp(y - y.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)

    def forward(self, x, training=False):
        y = self.outputs[self.at:self.at + len(x)]
        self.at += len(x)
        self.last = y
        return y

    def loss(self, labels):
        z = self.last - self.last.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-logp[np.arange(len(labels)), labels].mean())


def test_confusion_matrix_accuracy_and_loss_of_a_worked_example():
    outputs = [[2, 0, 0], [0, 2, 0], [0, 0, 2], [2, 0, 0], [0, 0, 2]]
    labels = [0, 1, 2, 1, 1]  # right, right, right, 1 taken for 0, 1 taken for 2
    data = Dataset(np.zeros((5, 1, 2, 2), np.uint8), np.array(labels), ["a", "b", "c"])
    result = evaluate(FixedNet(outputs), data, batch_size=2)
    assert result.confusion.tolist() == [[1, 0, 0], [1, 1, 1], [0, 0, 1]]
    assert result.accuracy == 3 / 5
    right, wrong = -np.log(np.exp(2) / (np.exp(2) + 2)), -np.log(1 / (np.exp(2) + 2))
    assert result.loss == pytest.approx((3 * right + 2 * wrong) / 5, rel=1e-6)


def test_evaluate_refuses_data_with_another_number_of_classes():
    data = Dataset(np.zeros((2, 1, 2, 2), np.uint8), np.array([0, 1]), ["a", "b"])
    with pytest.raises(ValueError, match="3 outputs but 'dataset' has 2 classes"):
        evaluate(FixedNet([[0, 0, 0]] * 2), data)


def test_multi_label_accuracy_needs_every_output_right():
    y = np.array([[3.0, -1.0, -2.0], [3.0, 1.0, -2.0]], np.float32)
    assert correct("SigmoidBCE", y, np.array([0, 0])) == 1
    assert targets("MSE", np.array([2]), 3).tolist() == [[0, 0, 1]]


def test_top_k_orders_by_probability_and_keeps_class_order_on_ties():
    p = np.array([0.1, 0.3, 0.05, 0.3, 0.15, 0.1])
    assert top_k(p, 5) == [(1, 0.3), (3, 0.3), (4, 0.15), (0, 0.1), (5, 0.1)]
    assert top_k(p[:2], 5) == [(1, 0.3), (0, 0.1)]
