"""Explicit SIMD vectors of float32 for numba kernels: a type and eleven intrinsics (zero, splat, load, store, fused
multiply-add, ReLU gate, even and odd lanes, zips, sum) that compile to one or two vector instructions.

LLVM's auto-vectoriser vectorises one loop at a time; it does not keep a block of accumulators in registers across
the loops of a convolution (a register-blocked kernel written with scalars ran at 4 GFLOP/s). Naming the vectors
lets :mod:`blocked` hold twelve of them through its whole inner loop, as hand-written BLAS kernels do. And a
padding copy row by row (:func:`planes.copy_run`), 8-32 floats a row, ran 2-4× faster as whole vectors than as a
plain loop over slices.

:data:`WIDTH` floats a vector: 16 (one zmm register) where the CPU has AVX-512, else 8 (one ymm register with AVX2;
LLVM splits the vector into what other CPUs have). Loads and stores take an index into a 1-D float32 array and need
no alignment; the caller keeps ``index + WIDTH`` within the array.
"""
from __future__ import annotations

import llvmlite.binding
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

WIDTH = 16 if llvmlite.binding.get_host_cpu_features().get("avx512f", False) else 8
_VECTOR = ir.VectorType(ir.FloatType(), WIDTH)


class VectorType(types.Type):
    def __init__(self):
        super().__init__(name=f"float32x{WIDTH}")


vector = VectorType()


@register_model(VectorType)
class _VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VECTOR)


def _address(context, builder, array_type, array, index):
    data = context.make_array(array_type)(context, builder, array).data
    return builder.bitcast(builder.gep(data, [index]), _VECTOR.as_pointer())


def _flat_float32(array) -> bool:
    return isinstance(array, types.Array) and array.dtype == types.float32 and array.ndim == 1


@intrinsic
def vzero(typingctx):
    """A vector of zeros."""
    def codegen(context, builder, signature, args):
        return ir.Constant(_VECTOR, [0.0] * WIDTH)
    return vector(), codegen


@intrinsic
def vsplat(typingctx, value):
    """A vector of WIDTH copies of a float32."""
    def codegen(context, builder, signature, args):
        undef = ir.Constant(_VECTOR, ir.Undefined)
        one = builder.insert_element(undef, args[0], ir.Constant(ir.IntType(32), 0))
        return builder.shuffle_vector(one, undef, ir.Constant(ir.VectorType(ir.IntType(32), WIDTH), [0] * WIDTH))
    return vector(types.float32), codegen


@intrinsic
def vload(typingctx, array, index):
    """array[index:index + WIDTH] as a vector (a 1-D float32 array, contiguous there)."""
    if not _flat_float32(array):
        return None

    def codegen(context, builder, signature, args):
        return builder.load(_address(context, builder, signature.args[0], *args), align=4)
    return vector(array, types.intp), codegen


@intrinsic
def vstore(typingctx, array, index, value):
    """array[index:index + WIDTH] = value."""
    if not _flat_float32(array):
        return None

    def codegen(context, builder, signature, args):
        builder.store(args[2], _address(context, builder, signature.args[0], args[0], args[1]), align=4)
        return context.get_dummy_value()
    return types.void(array, types.intp, vector), codegen


@intrinsic
def vfma(typingctx, a, b, c):
    """a·b + c elementwise, with one rounding."""
    def codegen(context, builder, signature, args):
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VECTOR, [_VECTOR] * 3),
                                             f"llvm.fma.v{WIDTH}f32")
        return builder.call(fma, args)
    return vector(vector, vector, vector), codegen


@intrinsic
def vgate(typingctx, a, gate):
    """a times (gate > 0): a gradient through the ReLU whose output is gate, as planes.gated (a NaN gate shuts; a
    NaN or infinite a stays NaN)."""
    def codegen(context, builder, signature, args):
        zero = ir.Constant(_VECTOR, [0.0] * WIDTH)
        return builder.fmul(args[0], builder.uitofp(builder.fcmp_ordered(">", args[1], zero), _VECTOR))
    return vector(vector, vector), codegen


def _shuffle(lanes: list[int], doc: str):
    """An intrinsic (a, b) -> the vector of lanes ``lanes`` of the 2·WIDTH floats a, b: one shuffle."""
    @intrinsic
    def pick(typingctx, a, b):
        def codegen(context, builder, signature, args):
            return builder.shuffle_vector(args[0], args[1], ir.Constant(ir.VectorType(ir.IntType(32), WIDTH), lanes))
        return vector(vector, vector), codegen
    pick.__doc__ = doc
    return pick


# a stride-2 row's two phases from a pair of vectors of it, and the row back from its phases' vectors e, o
veven = _shuffle(list(range(0, 2 * WIDTH, 2)), "The even elements of a, b.")
vodd = _shuffle(list(range(1, 2 * WIDTH, 2)), "The odd elements of a, b.")
vzip_low = _shuffle([i // 2 + i % 2 * WIDTH for i in range(WIDTH)], "a[0], b[0], a[1], b[1], … (WIDTH floats).")
vzip_high = _shuffle([WIDTH // 2 + i // 2 + i % 2 * WIDTH for i in range(WIDTH)], "The next WIDTH floats of the zip.")


@intrinsic
def vsum(typingctx, a):
    """The float32 sum of a vector's elements, halves added pairwise (the same order every call)."""
    def codegen(context, builder, signature, args):
        v, size = args[0], WIDTH
        while size > 1:
            size //= 2
            lanes = ir.VectorType(ir.IntType(32), size)
            low = builder.shuffle_vector(v, v, ir.Constant(lanes, list(range(size))))
            high = builder.shuffle_vector(v, v, ir.Constant(lanes, list(range(size, 2 * size))))
            v = builder.fadd(low, high)
        return builder.extract_element(v, ir.Constant(ir.IntType(32), 0))
    return types.float32(vector), codegen
