"""The three hot loops, written as LLVM IR over explicit 8-lane vectors.

Why IR and not a numba loop: a numba loop that sums into one scalar is a serial chain of adds,
unless fastmath lets LLVM reassociate it, and then the order (hence the bits) depends on the
CPU's vector width. Here the order is written down: lane ``l`` of the accumulator adds the
values ``a[start + l], a[start + l + 8], ...`` in that order, on every machine. The callers
merge the lanes in a fixed tree. Only plain IEEE operations appear (add, subtract, multiply,
compare, select, int<->float conversion): no fastmath flags, no FMA, no horizontal reductions.

Each intrinsic reads ``a[start:stop]`` (``stop - start`` a multiple of 8) and stores its lanes
into an output array; the few values after the last full vector are the caller's business.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from hpcdist.kernels._ir import (I32, I64, LANES, VF, VI, array_data, broadcast, splat, vload,
                                 vstore)


@intrinsic
def vx_moments(typingctx, a, start, stop, out):
    """Lanes over float64 a[start:stop], stored in out[0:32]: sum of the non-NaN values, NaN
    count, min and max (NaN ignored, +-inf included)."""
    sig = types.none(a, start, stop, out)

    def codegen(context, builder, sig, args):
        src = array_data(context, builder, sig.args[0], args[0])
        dst = array_data(context, builder, sig.args[3], args[3])
        zero, one = splat(VF, 0.0), splat(VF, 1.0)
        acc = [cgutils.alloca_once_value(builder, v)
               for v in (zero, zero, splat(VF, np.inf), splat(VF, -np.inf))]
        with cgutils.for_range_slice(builder, args[1], args[2], ir.Constant(I64, LANES)) as (i, _):
            v = vload(builder, src, i)
            number = builder.fcmp_ordered("==", v, v)
            total, nans, lo, hi = (builder.load(p) for p in acc)
            builder.store(builder.fadd(total, builder.select(number, v, zero)), acc[0])
            builder.store(builder.fadd(nans, builder.select(number, zero, one)), acc[1])
            builder.store(builder.select(builder.fcmp_ordered("<", v, lo), v, lo), acc[2])
            builder.store(builder.select(builder.fcmp_ordered(">", v, hi), v, hi), acc[3])
        for k, p in enumerate(acc):
            vstore(builder, builder.load(p), dst, ir.Constant(I64, k * LANES))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def vx_finite_range(typingctx, a, start, stop, out):
    """Lanes over float64 a[start:stop], stored in out[0:16]: min and max of the finite values
    (inf and -inf where a lane saw none). ``v - v == 0`` is the finiteness test: NaN for NaN and
    +-inf, 0 for every finite value."""
    sig = types.none(a, start, stop, out)

    def codegen(context, builder, sig, args):
        src = array_data(context, builder, sig.args[0], args[0])
        dst = array_data(context, builder, sig.args[3], args[3])
        zero = splat(VF, 0.0)
        acc = [cgutils.alloca_once_value(builder, v) for v in (splat(VF, np.inf), splat(VF, -np.inf))]
        with cgutils.for_range_slice(builder, args[1], args[2], ir.Constant(I64, LANES)) as (i, _):
            v = vload(builder, src, i)
            finite = builder.fcmp_ordered("==", builder.fsub(v, v), zero)
            lo, hi = builder.load(acc[0]), builder.load(acc[1])
            below = builder.and_(finite, builder.fcmp_ordered("<", v, lo))
            above = builder.and_(finite, builder.fcmp_ordered(">", v, hi))
            builder.store(builder.select(below, v, lo), acc[0])
            builder.store(builder.select(above, v, hi), acc[1])
        for k, p in enumerate(acc):
            vstore(builder, builder.load(p), dst, ir.Constant(I64, k * LANES))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def vx_m2_bins(typingctx, a, start, stop, prm, offs, period_mask, bins, idx, out):
    """Lanes over float64 a[start:stop]. ``prm`` holds five vectors of per-lane parameters:
    block mean, lo, hi, step, scale (= bins / (hi - lo)).

    out[0:8] = sum of (v - mean)**2 over the non-NaN values; idx[i - start] (uint32) = the bin of
    a[i] as ``_bins.bin_fast`` computes it (``bins`` when outside [lo, hi] or NaN), plus
    offs[(k & period_mask) * 8 + lane] for the k-th vector (the offset of its histogram copy).
    """
    sig = types.none(a, start, stop, prm, offs, period_mask, bins, idx, out)

    def codegen(context, builder, sig, args):
        a_, start_, stop_, prm_, offs_, mask_, bins_, idx_, out_ = args
        src = array_data(context, builder, sig.args[0], a_)
        par = array_data(context, builder, sig.args[3], prm_)
        off = array_data(context, builder, sig.args[4], offs_)
        dst = array_data(context, builder, sig.args[7], idx_)
        res = array_data(context, builder, sig.args[8], out_)
        mean, lo, hi, step, scale = (vload(builder, par, ir.Constant(I64, k * LANES)) for k in range(5))
        nbins = broadcast(builder, builder.trunc(bins_, I32), VI)
        last = builder.sub(nbins, splat(VI, 1))
        lastf = builder.sitofp(last, VF)
        zero, one, inf = splat(VF, 0.0), splat(VF, 1.0), splat(VF, np.inf)
        izero, ione = splat(VI, 0), splat(VI, 1)
        q = cgutils.alloca_once_value(builder, zero)
        with cgutils.for_range_slice(builder, start_, stop_, ir.Constant(I64, LANES)) as (i, k):
            v = vload(builder, src, i)
            # M2: (v - mean)**2, 0 for NaN
            d = builder.fsub(v, mean)
            dd = builder.select(builder.fcmp_ordered("==", v, v), builder.fmul(d, d), zero)
            builder.store(builder.fadd(builder.load(q), dd), q)
            # the bin: estimate t = (v - lo) * scale, then correct it against the edges
            inside = builder.and_(builder.fcmp_ordered(">=", v, lo), builder.fcmp_ordered("<=", v, hi))
            w = builder.select(inside, v, lo)
            f = builder.fmul(builder.fsub(w, lo), scale)
            f = builder.select(builder.fcmp_ordered("<", f, lastf), f, lastf)
            t = builder.fptosi(f, VI)
            tf = builder.sitofp(t, VF)
            e0 = builder.fadd(builder.fmul(tf, step), lo)
            e1 = builder.fadd(builder.fmul(builder.fadd(tf, one), step), lo)
            e1 = builder.select(builder.fcmp_ordered("==", tf, lastf), inf, e1)
            t = builder.select(builder.fcmp_ordered("<", w, e0), builder.sub(t, ione), t)
            t = builder.select(builder.fcmp_ordered(">=", w, e1), builder.add(t, ione), t)
            t = builder.select(builder.icmp_signed("<", t, izero), izero, t)
            t = builder.select(inside, t, nbins)
            row = builder.mul(builder.and_(k, mask_), ir.Constant(I64, LANES))
            t = builder.add(t, vload(builder, off, row, VI))
            vstore(builder, t, dst, builder.sub(i, start_), VI)
        vstore(builder, builder.load(q), res, ir.Constant(I64, 0))
        return context.get_dummy_value()

    return sig, codegen
