"""The numbers behind the training panel's views: smoothed curves and the confusion matrix's image cells."""
import numpy as np
import pytest

from convdesigner.engine.metrics import Evaluation, smoothed


def test_smoothing_is_bias_corrected_and_skips_gaps():
    values = np.array([4.0, 4.0, np.nan, 4.0])
    np.testing.assert_allclose(smoothed(values, 0.9)[0], [4.0, 4.0, 4.0, 4.0])  # a constant stays, from the start
    assert smoothed(np.array([1.0, 3.0]), 0.0)[0].tolist() == [1.0, 3.0]
    # by hand: a = 0.5*1 → 0.5 / (1-0.5) = 1; a = 0.5*0.5 + 0.5*3 = 1.75 → 1.75 / 0.75
    assert smoothed(np.array([1.0, 3.0]), 0.5)[0][1] == pytest.approx(1.75 / 0.75)


def test_smoothing_a_growing_curve_in_pieces_equals_smoothing_it_whole():
    values = np.random.default_rng(0).normal(size=50)
    whole, _ = smoothed(values, 0.8)
    first, state = smoothed(values[:20], 0.8)
    rest, _ = smoothed(values[20:], 0.8, state)
    np.testing.assert_allclose(np.concatenate([first, rest]), whole)


def test_a_wrong_cell_lists_its_most_confident_mistakes_first():
    labels = np.array([0, 0, 1, 0, 0])
    predicted = np.array([1, 1, 1, 0, 0])
    confidence = np.array([0.6, 0.9, 0.8, 0.7, 0.55], np.float32)
    e = Evaluation(0.0, 0.0, np.zeros((2, 2), np.int64), labels, predicted, confidence)
    assert e.cell(0, 1).tolist() == [1, 0]
    assert e.cell(0, 0).tolist() == [4, 3]  # right answers: the least sure first
    assert e.cell(1, 0).tolist() == []
