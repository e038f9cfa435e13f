"""LLVM IR building blocks for the lane intrinsics: one vector width, loads, stores, splats.

Every intrinsic works on ``<8 x double>`` (and ``<8 x i32>`` for bin indices) whatever the CPU:
LLVM splits an 8-lane vector into the registers the machine has (four SSE2, two AVX2, one
AVX-512), so lane ``l`` sees the same values in the same order on every machine.
"""

from __future__ import annotations

from llvmlite import ir

LANES = 8

F64 = ir.DoubleType()
I32 = ir.IntType(32)
I64 = ir.IntType(64)
VF = ir.VectorType(F64, LANES)
VI = ir.VectorType(I32, LANES)


def splat(ty: ir.VectorType, value: float | int) -> ir.Constant:
    """A constant vector with ``value`` in every lane."""
    return ir.Constant(ty, [value] * LANES)


def vector_at(builder: ir.IRBuilder, data: ir.Value, index: ir.Value, ty: ir.VectorType) -> ir.Value:
    """A pointer to the vector of type ``ty`` that starts at element ``index`` of ``data``."""
    return builder.bitcast(builder.gep(data, [index], inbounds=True), ty.as_pointer())


def vload(builder: ir.IRBuilder, data: ir.Value, index: ir.Value, ty: ir.VectorType = VF) -> ir.Value:
    """Load 8 lanes from ``data[index:index + 8]`` (aligned only to the element, as numpy is)."""
    return builder.load(vector_at(builder, data, index, ty), align=4 if ty is VI else 8)


def vstore(builder: ir.IRBuilder, value: ir.Value, data: ir.Value, index: ir.Value,
           ty: ir.VectorType = VF) -> None:
    """Store 8 lanes into ``data[index:index + 8]``."""
    builder.store(value, vector_at(builder, data, index, ty), align=4 if ty is VI else 8)


def array_data(context, builder: ir.IRBuilder, ty, value: ir.Value) -> ir.Value:
    """The data pointer of a numba array argument."""
    return context.make_array(ty)(context, builder, value).data


def broadcast(builder: ir.IRBuilder, scalar: ir.Value, ty: ir.VectorType) -> ir.Value:
    """A run-time scalar copied into every lane."""
    vec = builder.insert_element(ir.Constant(ty, ir.Undefined), scalar, ir.Constant(I32, 0))
    return builder.shuffle_vector(vec, vec, ir.Constant(VI, [0] * LANES))
