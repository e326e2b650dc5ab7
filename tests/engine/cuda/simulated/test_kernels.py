"""Every CUDA kernel against the CPU kernel of the same name, on the same arguments: outputs, untouched inputs and
results must agree to float32 tolerance (outputs start as 7s, so a cell a kernel forgets to write shows)."""
import numpy as np
import pytest

from .conftest import REAL_SIZES, assert_same, run_both

R = np.random.default_rng(0)
S = 3 if REAL_SIZES else 1  # size multiplier on a real GPU


def n(*shape):
    return R.normal(size=shape).astype(np.float32)


def pos(*shape):
    return R.uniform(0.5, 2.0, size=shape).astype(np.float32)


def out(*shape, dtype=np.float32):
    return np.full(shape, 7, dtype)


def distinct(*shape):
    return (R.permutation(int(np.prod(shape))).reshape(shape) * 0.1 - 3.0).astype(np.float32)


E = 40 * S ** 3  # elements of the element-wise cases
NC = (2 * S, 3, 4 * S)  # (N, C, L) of the per-channel cases

CASES = {
    "relu_forward": (n(E), out(E)),
    "relu_backward": (n(E), n(E), out(E)),
    "leaky_relu_forward": (n(E), 0.2, out(E)),
    "leaky_relu_backward": (n(E), n(E), 0.2, out(E)),
    "elu_forward": (n(E), 0.5, out(E)),
    "elu_backward": (n(E), n(E), n(E), 0.5, out(E)),
    "sigmoid_forward": (n(E) * 10, out(E)),
    "sigmoid_backward": (pos(E), n(E), out(E)),
    "silu_forward": (n(E), out(E)),
    "silu_backward": (n(E), n(E), out(E)),
    "tanh_forward": (n(E), out(E)),
    "tanh_backward": (n(E), n(E), out(E)),
    "prelu_forward": (n(*NC), n(3), out(*NC)),
    "prelu_backward": (n(*NC), n(3), n(*NC), out(*NC), out(3)),
    "softmax_forward": (n(*NC) * 30, out(*NC)),
    "softmax_backward": (pos(*NC), n(*NC), out(*NC)),
    "dense_forward": (n(3 * S, 5 * S), n(4 * S, 5 * S), n(4 * S), out(3 * S, 4 * S)),
    "dense_forward-nobias": (n(3, 5), n(4, 5), None, out(3, 4)),
    "dense_backward": (n(3 * S, 5 * S), n(4 * S, 5 * S), n(3 * S, 4 * S), out(3 * S, 5 * S), out(4 * S, 5 * S),
                       out(4 * S)),
    "dense_backward-nodx": (n(3, 5), n(4, 5), n(3, 4), None, out(4, 5), None),
    "dropout_forward": (n(E), R.uniform(size=E).astype(np.float32), 0.3, out(E)),
    "dropout_backward": (pos(E), n(E), out(E)),
    "gap_forward": (n(*NC), out(*NC[:2])),
    "gap_backward": (n(*NC[:2]), out(*NC)),
    "softmax_cross_entropy": (n(3 * S, 4) * 5, R.integers(0, 4, 3 * S), 0.1, out(3 * S, 4)),
    "sigmoid_bce": (n(12 * S) * 5, R.integers(0, 2, 12 * S).astype(np.float32), out(12 * S)),
    "mean_squared_error": (n(12 * S), n(12 * S), out(12 * S)),
    "add_forward": ([n(2, 3, 2), n(2, 3, 2), n(2, 3, 2)], out(2, 3, 2)),
    "concat_forward": ([n(2, 1, 3), n(2, 2, 3)], out(2, 3, 3)),
    "concat_backward": (n(2, 3, 3), [1, 2], [out(2, 1, 3), out(2, 2, 3)]),
    "concat_backward-partial": (n(2, 3, 3), [1, 2], [None, out(2, 2, 3)]),
    "multiply_forward": (n(2, 3, 2), n(2, 3, 2), out(2, 3, 2)),
    "multiply_backward": (n(2, 3, 2), n(2, 3, 2), n(2, 3, 2), out(2, 3, 2), out(2, 3, 2)),
    "multiply_backward-partial": (n(2, 3, 2), n(2, 3, 2), n(2, 3, 2), None, out(2, 3, 2)),
    "gate_forward": (n(*NC), n(*NC[:2]), out(*NC)),
    "gate_backward": (n(*NC), n(*NC[:2]), n(*NC), True, True, out(*NC), out(*NC[:2])),
    "bn_stats": (n(*NC) + 3, out(3), out(3)),
    "bn_update_running": (n(3), pos(3), n(3), pos(3), 0.1, 8, 1e-5, out(3)),
    "bn_invstd": (pos(3), 1e-5, out(3)),
    "bn_normalize": (n(*NC), n(3), pos(3), n(3), n(3), out(*NC)),
    "bn_backward": (n(*NC), n(*NC), n(3), pos(3), n(3), True, out(*NC), out(3), out(3)),
    "bn_backward-running": (n(*NC), n(*NC), n(3), pos(3), n(3), False, out(*NC), out(3), out(3)),
}


@pytest.mark.parametrize("case", CASES)
def test_kernel_matches_the_cpu(case):
    cpu, gpu = run_both(case.split("-")[0], *CASES[case])
    assert_same(cpu, gpu, case)


# pool: (input shape, pool size, stride, padding, output size)
POOLS = {
    "2x2": ((2, 2, 4 * S, 4 * S), 2, 2, 0, 2 * S),
    "3x3-pad-ceil": ((1, 2, 5, 5), 3, 2, 1, 3),
    "3x3-stride1-overlap": ((1, 2, 4, 4), 3, 1, 1, 4),
}


@pytest.mark.parametrize("case", POOLS)
def test_pooling_matches_the_cpu(case):
    shape, k, stride, pad, o = POOLS[case]
    x = distinct(*shape)
    x.flat[3] = np.nan  # a NaN wins its windows on both
    cpu, gpu = run_both("maxpool2d_forward", x, k, stride, pad, o, o, out=out(*shape[:2], o, o),
                        argmax_out=out(*shape[:2], o, o, dtype=np.int32))
    assert_same(cpu, gpu, "max forward")
    argmax = cpu[2][1]
    cpu, gpu = run_both("maxpool2d_backward", n(*shape[:2], o, o), argmax, k, stride, pad, *shape[2:],
                        dx_out=out(*shape))
    assert_same(cpu, gpu, "max backward")
    cpu, gpu = run_both("avgpool2d_forward", n(*shape), k, stride, pad, o, o, out=out(*shape[:2], o, o))
    assert_same(cpu, gpu, "avg forward")
    cpu, gpu = run_both("avgpool2d_backward", n(*shape[:2], o, o), k, stride, pad, *shape[2:], dx_out=out(*shape))
    assert_same(cpu, gpu, "avg backward")


# conv: (x shape, w shape, stride, pads (top, bottom, left, right), dilation, groups)
CONVS = {
    "valid": ((2, 2, 5, 5), (3, 2, 3, 3), 1, (0, 0, 0, 0), 1, 1),
    "stride2-asymmetric-pad": ((2, 2, 6, 5), (2, 2, 3, 2), 2, (0, 1, 1, 0), 1, 1),
    "dilation2": ((1, 2, 7, 7), (2, 2, 3, 3), 1, (2, 2, 2, 2), 2, 1),
    "groups2": ((1, 4, 3, 3), (2, 2, 2, 2), 1, (1, 0, 1, 0), 1, 2),  # direct kernels: one block per weight in dW
    "depthwise-stride2": ((2, 2, 4, 4), (2, 1, 2, 2), 2, (1, 1, 1, 1), 1, 2),
    "big": ((4, 8, 12, 12), (70, 8, 3, 3), 1, (1, 1, 1, 1), 1, 1),  # partial 64-row tiles, several column tiles
}
if not REAL_SIZES:
    del CONVS["big"]


@pytest.mark.parametrize("case, relu", [(c, False) for c in CONVS] + [("valid", True), ("groups2", True)])
def test_convolution_matches_the_cpu(case, relu):
    xs, ws, stride, pads, dilation, groups = CONVS[case]
    x, w, b = n(*xs), n(*ws), (None if relu and groups > 1 else n(ws[0]))
    cpu, gpu = run_both("conv2d_forward", x, w, b, stride, pads, dilation, groups, relu=relu)
    assert_same(cpu, gpu, "forward", tol=1e-4)
    y = cpu[2]
    dy = n(*y.shape)
    cpu, gpu = run_both("conv2d_backward", x, w, dy, stride, pads, dilation, groups, True, dx_out=out(*xs),
                        relu_out=y if relu else None)
    assert_same(cpu, gpu, "backward", tol=1e-4)


def test_convolution_without_input_gradient():
    x, w, dy = n(2, 2, 5, 5), n(3, 2, 3, 3), n(2, 3, 3, 3)
    cpu, gpu = run_both("conv2d_backward", x, w, dy, 1, (0, 0, 0, 0), 1, 1, False)
    assert gpu[2][0] is None
    assert_same(cpu, gpu, "backward")


def test_dropout_uniform_numbers_are_seeded_and_uniform():
    from numba import cuda

    from .conftest import GPU

    def draw(seed, size=1024):
        u = cuda.device_array(size, np.float32)
        GPU.k.uniform(np.random.default_rng([seed, 0, 0]), u)
        return u.copy_to_host()

    a, b, c = draw(1), draw(1), draw(2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() >= 0.0 and a.max() < 1.0
    assert abs(a.mean() - 0.5) < 0.05 and abs(np.mean(a < 0.3) - 0.3) < 0.05
    assert len(np.unique(a)) > 1000
