"""Per-column statistics and a histogram of a 1-D or 2-D numeric dataset.

Results: count, nan_count, sum, mean, var (population, ddof=0), min, max, hist, hist_edges.
NaNs are counted in nan_count and excluded from everything else. The histogram matches
``numpy.histogram(column, bins, range=(lo, hi))`` exactly; without lo/hi the range is each column's
finite min..max (numpy's default), found in a first, cheap pass over the data.

Variance merges use Chan et al.'s pairwise update (exact count, mean and M2 per block), never
sum-of-squares, so large offsets do not cancel.
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from hpcdist import Param, UserError

PARAMS = {
    "bins": Param(int, 64, "number of equal-width histogram bins"),
    "lo": Param(float, float("nan"), "histogram lower edge (default: column minimum)"),
    "hi": Param(float, float("nan"), "histogram upper edge (default: column maximum)"),
}
INPUT_NDIM = (1, 2)
BLOCK_ROWS = 1024


def default_input(params):
    return "synthetic:rows=1000000,cols=4,seed=0,dist=normal,nan=0.001"


def check(ctx):
    p = ctx.params
    if p["bins"] < 1:
        raise UserError(f"param bins must be >= 1, got {p['bins']}")
    given = [not np.isnan(p["lo"]), not np.isnan(p["hi"])]
    if any(given) and not all(given):
        raise UserError("params lo and hi go together: give both or neither")
    if all(given) and not (np.isfinite(p["lo"]) and np.isfinite(p["hi"]) and p["lo"] < p["hi"]):
        raise UserError(f"params lo < hi must be finite, got lo={p['lo']} hi={p['hi']}")


# ---- multi-pass plan: [range pass if lo/hi not given] -> full pass -------------------------------

def init(ctx):
    cols, p = ctx.cols, ctx.params
    if np.isnan(p["lo"]):
        return {"phase": np.asarray(0), "lo": np.zeros(cols), "hi": np.ones(cols)}
    return {"phase": np.asarray(1), "lo": np.full(cols, p["lo"]), "hi": np.full(cols, p["hi"])}


def update(state, partial, ctx):
    if int(state["phase"]) == 1:
        return state, True
    lo, hi = partial["min"].copy(), partial["max"].copy()
    empty = ~(lo <= hi)                      # a column with no finite values
    lo[empty], hi[empty] = 0.0, 1.0          # numpy's range for empty data
    same = lo == hi
    lo[same] -= 0.5                          # numpy widens an empty range by 0.5 each side
    hi[same] += 0.5
    return {"phase": np.asarray(1), "lo": lo, "hi": hi}, False


def map(shard, ctx):
    x = shard.reshape(shard.shape[0], -1)
    if int(ctx.state["phase"]) == 0:
        mn, mx = _finite_range(x)
        return {"min": mn, "max": mx}
    count, nan_count, total, mean, m2, mn, mx, hist = _shard_stats(
        x, ctx.state["lo"], ctx.state["hi"], ctx.params["bins"])
    return {"count": count, "nan_count": nan_count, "sum": total, "mean": mean, "m2": m2,
            "min": mn, "max": mx, "hist": hist}


def combine(a, b):
    if "count" not in a:
        return {"min": np.fmin(a["min"], b["min"]), "max": np.fmax(a["max"], b["max"])}
    n = a["count"] + b["count"]
    share = np.divide(b["count"], n, out=np.zeros(n.shape), where=n > 0)
    delta = b["mean"] - a["mean"]
    return {
        "count": n,
        "nan_count": a["nan_count"] + b["nan_count"],
        "sum": a["sum"] + b["sum"],
        "mean": a["mean"] + delta * share,
        "m2": a["m2"] + b["m2"] + delta * delta * (a["count"] * share),
        "min": np.fmin(a["min"], b["min"]),
        "max": np.fmax(a["max"], b["max"]),
        "hist": a["hist"] + b["hist"],
    }


def finalize(partial, ctx):
    count = partial["count"]
    none = count == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(none, np.nan, partial["m2"] / count)
    edges = np.stack([np.linspace(lo, hi, ctx.params["bins"] + 1)
                      for lo, hi in zip(ctx.state["lo"], ctx.state["hi"])])
    out = {
        "count": count,
        "nan_count": partial["nan_count"],
        "sum": partial["sum"],
        "mean": np.where(none, np.nan, partial["mean"]),
        "var": var,
        "min": np.where(none, np.nan, partial["min"]),
        "max": np.where(none, np.nan, partial["max"]),
        "hist": partial["hist"],
        "hist_edges": edges,
    }
    if len(ctx.row_shape) == 0:   # 1-D input: one column, reported without the column axis
        out = {k: v[0] for k, v in out.items()}
    return out


# ---- kernels ------------------------------------------------------------------------------------
#
# Exact and CPU-independent. Every floating-point operation below is a plain IEEE add, subtract,
# multiply, divide, compare or select written out in this file: no fastmath, no reduction left to
# LLVM to reassociate, no FMA contraction. The hot loops are LLVM IR on explicit <8 x double>
# vectors: 8 lanes on every machine (two AVX2 registers, one AVX-512 register, four SSE2
# registers), lane l always accumulates the same values in the same order, and the lanes are merged
# in a fixed tree afterwards. A shard therefore gives the same bits on any CPU.
#
# A shard (n, c) is processed in blocks of BLOCK_ROWS rows. When c divides 8 the block is read as
# it lies in memory (row-major) and lane l holds column l % c; otherwise (and when the shard is not
# C-contiguous float64) the block is first copied into a float64 buffer, one column at a time (or
# all columns when c divides 8). Per block: pass 1 gives the count, sum, min and max; pass 2 gives
# M2 about the block mean and every value's histogram bin into an index buffer; a scalar loop then
# counts the indices into SUBHISTS interleaved copies of the histogram (so runs of one bin do not
# wait on a single counter); the block merges into the shard with Chan et al.'s update.
#
# Histogram bins are numpy's: estimate t = (v - lo) * bins / (hi - lo), then correct t against the
# edges t * step + lo (the last edge is hi), as numpy.histogram does. Whenever a bin is wider than
# 2**-40 * max(|lo|, |hi|) the estimate is within one bin of the right one, numpy's own estimate
# too, so both corrections land on the same bin. Narrower bins (and ranges whose width overflows)
# take a scalar path that repeats numpy's arithmetic operation for operation.

LANES = 8
SUBHISTS = 4
_SUBHIST_MAX_BINS = 4096    # c * (bins + 1) above this: one histogram copy (memory, zeroing)
_TINY_STEP = 2.0 ** -40

_F64 = ir.DoubleType()
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_VF = ir.VectorType(_F64, LANES)
_VI = ir.VectorType(_I32, LANES)


def _splat(ty, value):
    return ir.Constant(ty, [value] * LANES)


def _vector_at(builder, data, index, ty):
    return builder.bitcast(builder.gep(data, [index], inbounds=True), ty.as_pointer())


def _vload(builder, data, index, ty=_VF):
    return builder.load(_vector_at(builder, data, index, ty), align=4 if ty is _VI else 8)


def _vstore(builder, value, data, index, ty=_VF):
    builder.store(value, _vector_at(builder, data, index, ty), align=4 if ty is _VI else 8)


def _data(context, builder, ty, value):
    return context.make_array(ty)(context, builder, value).data


def _broadcast(builder, scalar, ty):
    vec = builder.insert_element(ir.Constant(ty, ir.Undefined), scalar, ir.Constant(_I32, 0))
    return builder.shuffle_vector(vec, vec, ir.Constant(_VI, [0] * LANES))


@intrinsic
def _vx_moments(typingctx, a, start, stop, out):
    """Lanes over float64 a[start:stop] (stop - start a multiple of 8), stored in out[0:32]:
    sum of the non-NaN values, NaN count, min and max (NaN ignored, +-inf included)."""
    sig = types.none(a, start, stop, out)

    def codegen(context, builder, sig, args):
        src = _data(context, builder, sig.args[0], args[0])
        dst = _data(context, builder, sig.args[3], args[3])
        zero, one = _splat(_VF, 0.0), _splat(_VF, 1.0)
        acc = [cgutils.alloca_once_value(builder, v)
               for v in (zero, zero, _splat(_VF, np.inf), _splat(_VF, -np.inf))]
        with cgutils.for_range_slice(builder, args[1], args[2], ir.Constant(_I64, LANES)) as (i, _):
            v = _vload(builder, src, i)
            number = builder.fcmp_ordered("==", v, v)
            total, nans, lo, hi = (builder.load(p) for p in acc)
            builder.store(builder.fadd(total, builder.select(number, v, zero)), acc[0])
            builder.store(builder.fadd(nans, builder.select(number, zero, one)), acc[1])
            builder.store(builder.select(builder.fcmp_ordered("<", v, lo), v, lo), acc[2])
            builder.store(builder.select(builder.fcmp_ordered(">", v, hi), v, hi), acc[3])
        for k, p in enumerate(acc):
            _vstore(builder, builder.load(p), dst, ir.Constant(_I64, k * LANES))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _vx_finite_range(typingctx, a, start, stop, out):
    """Lanes over float64 a[start:stop] (a multiple of 8 long), stored in out[0:16]: min and max
    of the finite values (inf and -inf where a lane saw none)."""
    sig = types.none(a, start, stop, out)

    def codegen(context, builder, sig, args):
        src = _data(context, builder, sig.args[0], args[0])
        dst = _data(context, builder, sig.args[3], args[3])
        zero = _splat(_VF, 0.0)
        acc = [cgutils.alloca_once_value(builder, v) for v in (_splat(_VF, np.inf), _splat(_VF, -np.inf))]
        with cgutils.for_range_slice(builder, args[1], args[2], ir.Constant(_I64, LANES)) as (i, _):
            v = _vload(builder, src, i)
            finite = builder.fcmp_ordered("==", builder.fsub(v, v), zero)
            lo, hi = builder.load(acc[0]), builder.load(acc[1])
            below = builder.and_(finite, builder.fcmp_ordered("<", v, lo))
            above = builder.and_(finite, builder.fcmp_ordered(">", v, hi))
            builder.store(builder.select(below, v, lo), acc[0])
            builder.store(builder.select(above, v, hi), acc[1])
        for k, p in enumerate(acc):
            _vstore(builder, builder.load(p), dst, ir.Constant(_I64, k * LANES))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _vx_m2_bins(typingctx, a, start, stop, prm, offs, period_mask, bins, idx, out):
    """Lanes over float64 a[start:stop] (a multiple of 8 long). ``prm`` holds five vectors of
    per-lane parameters: block mean, lo, hi, step, scale (= bins / (hi - lo)).

    out[0:8] = sum of (v - mean)**2 over the non-NaN values; idx[i - start] (uint32) = the bin of
    a[i] as _bin computes it, plus offs[(k & period_mask) * 8 + lane] for the k-th vector.
    """
    sig = types.none(a, start, stop, prm, offs, period_mask, bins, idx, out)

    def codegen(context, builder, sig, args):
        a_, start_, stop_, prm_, offs_, mask_, bins_, idx_, out_ = args
        src = _data(context, builder, sig.args[0], a_)
        par = _data(context, builder, sig.args[3], prm_)
        off = _data(context, builder, sig.args[4], offs_)
        dst = _data(context, builder, sig.args[7], idx_)
        res = _data(context, builder, sig.args[8], out_)
        mean, lo, hi, step, scale = (_vload(builder, par, ir.Constant(_I64, k * LANES)) for k in range(5))
        nbins = _broadcast(builder, builder.trunc(bins_, _I32), _VI)
        last = builder.sub(nbins, _splat(_VI, 1))
        lastf = builder.sitofp(last, _VF)
        zero, one, inf = _splat(_VF, 0.0), _splat(_VF, 1.0), _splat(_VF, np.inf)
        izero, ione = _splat(_VI, 0), _splat(_VI, 1)
        q = cgutils.alloca_once_value(builder, zero)
        with cgutils.for_range_slice(builder, start_, stop_, ir.Constant(_I64, LANES)) as (i, k):
            v = _vload(builder, src, i)
            d = builder.fsub(v, mean)
            dd = builder.select(builder.fcmp_ordered("==", v, v), builder.fmul(d, d), zero)
            builder.store(builder.fadd(builder.load(q), dd), q)
            inside = builder.and_(builder.fcmp_ordered(">=", v, lo), builder.fcmp_ordered("<=", v, hi))
            w = builder.select(inside, v, lo)
            f = builder.fmul(builder.fsub(w, lo), scale)
            f = builder.select(builder.fcmp_ordered("<", f, lastf), f, lastf)
            t = builder.fptosi(f, _VI)
            tf = builder.sitofp(t, _VF)
            e0 = builder.fadd(builder.fmul(tf, step), lo)
            e1 = builder.fadd(builder.fmul(builder.fadd(tf, one), step), lo)
            e1 = builder.select(builder.fcmp_ordered("==", tf, lastf), inf, e1)
            t = builder.select(builder.fcmp_ordered("<", w, e0), builder.sub(t, ione), t)
            t = builder.select(builder.fcmp_ordered(">=", w, e1), builder.add(t, ione), t)
            t = builder.select(builder.icmp_signed("<", t, izero), izero, t)
            t = builder.select(inside, t, nbins)
            row = builder.mul(builder.and_(k, mask_), ir.Constant(_I64, LANES))
            t = builder.add(t, _vload(builder, off, row, _VI))
            _vstore(builder, t, dst, builder.sub(i, start_), _VI)
        _vstore(builder, builder.load(q), res, ir.Constant(_I64, 0))
        return context.get_dummy_value()

    return sig, codegen


def _f64_flat(x):
    """``x`` flattened when it is a C-contiguous float64 array (a view), else an empty array."""


@overload(_f64_flat)
def _f64_flat_impl(x):
    if isinstance(x, types.Array) and x.dtype == types.float64 and x.layout == "C":
        return lambda x: x.reshape(-1)
    return lambda x: np.empty(0, np.float64)


def _flat(x):
    """``x`` flattened when it is C-contiguous (a view, any dtype), else an empty array."""


@overload(_flat)
def _flat_impl(x):
    if isinstance(x, types.Array) and x.layout == "C":
        return lambda x: x.reshape(-1)
    return lambda x: np.empty(0, x.dtype)


@njit(cache=True, nogil=True)
def _block_values(x, f64, flat, b0, rows, j0, cw, buf):
    """Rows b0..b0+rows-1 of columns j0..j0+cw-1 as row-major float64: the shard's own memory when
    it can be (``f64`` is _f64_flat(x), ``flat`` is _flat(x)), else a copy in ``buf``.
    Returns (array, index of its first value)."""
    n, c = x.shape
    if flat.size != n * c:                      # not C-contiguous
        for i in range(rows):
            for q in range(cw):
                buf[i * cw + q] = x[b0 + i, j0 + q]
    elif cw == c:
        if f64.size == n * c:
            return f64, b0 * c
        first = b0 * c
        for k in range(rows * c):
            buf[k] = flat[first + k]
    else:
        first = b0 * c + j0
        for i in range(rows):
            buf[i] = flat[first + i * c]
    return buf, 0


@njit(cache=True, nogil=True)
def _fold(lanes, base, q, cw, tmp):
    """Sum of column q's lanes (lanes[base + q], lanes[base + q + cw], ...), pairwise, fixed order."""
    w = LANES // cw
    for r in range(w):
        tmp[r] = lanes[base + q + r * cw]
    while w > 1:
        w //= 2
        for r in range(w):
            tmp[r] = tmp[2 * r] + tmp[2 * r + 1]
    return tmp[0]


@njit(cache=True, nogil=True)
def _bin(v, lo, hi, step, scale, bins):
    """numpy.histogram's bin of v, or ``bins`` when v is outside [lo, hi] or NaN: the same
    operations as _vx_m2_bins (valid for the ranges that take the fast path, see above)."""
    if not (v >= lo and v <= hi):
        return bins
    last = bins - 1
    f = (v - lo) * scale
    f = f if f < last else float(last)
    t = int(f)
    tf = float(t)
    e0 = tf * step + lo
    e1 = np.inf if tf == last else (tf + 1.0) * step + lo
    if v < e0:
        t -= 1
    elif v >= e1:
        t += 1
    return max(t, 0)


@njit(cache=True, nogil=True)
def _edges(lo, hi, bins):
    """np.linspace(lo, hi, bins + 1), operation for operation (evenly spaced if hi - lo overflows,
    where numpy itself gives NaN edges)."""
    e = np.empty(bins + 1)
    delta = hi - lo
    if delta - delta != 0.0:
        step = hi / bins - lo / bins
        for t in range(bins):
            e[t] = t * step + lo
    else:
        step = delta / bins
        for t in range(bins):
            e[t] = (t / bins) * delta + lo if step == 0.0 else t * step + lo
    e[bins] = hi
    return e


@njit(cache=True, nogil=True)
def _bin_exact(v, lo, hi, edges, bins):
    """numpy.histogram's bin of v for any range: its own estimate and correction (a search on the
    edges when that estimate is not a number), or ``bins`` when v is outside [lo, hi] or NaN."""
    if not (v >= lo and v <= hi):
        return bins
    last = bins - 1
    f = ((v - lo) / (hi - lo)) * bins
    if f >= 0.0 and f <= bins:
        t = min(int(f), last)
        if v < edges[t]:
            t -= 1
        elif v >= edges[t + 1] and t != last:
            t += 1
    else:
        t = np.searchsorted(edges, v, side="right") - 1
    return min(max(t, 0), last)


@njit(cache=True, nogil=True)
def _shard_stats(x, lo, hi, bins):
    """count, nan_count, sum, mean, M2, min, max and histogram of each column of x (n, c)."""
    n, c = x.shape
    count = np.zeros(c, np.int64)
    nan_count = np.zeros(c, np.int64)
    total = np.zeros(c)
    mean = np.zeros(c)
    m2 = np.zeros(c)
    mn = np.full(c, np.inf)
    mx = np.full(c, -np.inf)
    hist = np.zeros((c, bins), np.int64)
    if n == 0 or c == 0:
        return count, nan_count, total, mean, m2, mn, mx, hist
    f64 = _f64_flat(x)
    flat = _flat(x)
    cw = c if LANES % c == 0 else 1         # columns per pass over a block
    passes = c // cw
    stride = bins + 1                       # each histogram copy has a dump bin for the outsiders
    subs = SUBHISTS if c * stride <= _SUBHIST_MAX_BINS else 1
    packed = subs * c * stride < 2**31      # idx = bin + offset of its copy, one uint32
    h = np.zeros(subs * c * stride if packed else 0, np.int64)

    step = np.empty(c)
    scale = np.empty(c)
    fast = np.empty(c, np.bool_)
    for j in range(c):
        delta = hi[j] - lo[j]
        step[j] = delta / bins
        scale[j] = bins / delta
        fast[j] = (delta - delta == 0.0 and step[j] > _TINY_STEP * max(abs(lo[j]), abs(hi[j]))
                   and bins < 2**30)
    all_fast = fast.all()
    # lane l of pass p is column p * cw + l % cw; the k-th vector of a block sends its lanes to
    # histogram copy (row % subs), row = (8 k + l) // cw, a pattern that repeats every period
    period = max(1, subs * cw // LANES)
    prm = np.empty((passes, 5 * LANES))
    offs = np.zeros((passes, period * LANES), np.int32)
    for p in range(passes):
        for lane in range(LANES):
            j = p * cw + lane % cw
            ok = fast[j]                    # slow columns get harmless values; their bins are redone
            prm[p, LANES + lane] = lo[j] if ok else 0.0
            prm[p, 2 * LANES + lane] = hi[j] if ok else 1.0
            prm[p, 3 * LANES + lane] = step[j] if ok else 1.0 / bins
            prm[p, 4 * LANES + lane] = scale[j] if ok else float(bins)
            if packed:
                for k in range(period):
                    row = (k * LANES + lane) // cw
                    offs[p, k * LANES + lane] = ((row % subs) * c + j) * stride

    buf = np.empty(BLOCK_ROWS * cw)
    idx = np.empty(BLOCK_ROWS * cw, np.uint32)
    lanes = np.empty(4 * LANES)
    qlanes = np.empty(LANES)
    tmp = np.empty(LANES)
    t_sum = np.empty(cw)
    t_nan = np.empty(cw, np.int64)
    t_lo = np.empty(cw)
    t_hi = np.empty(cw)
    t_m2 = np.empty(cw)
    b_count = np.empty(cw, np.int64)
    b_mean = np.empty(cw)
    for b0 in range(0, n, BLOCK_ROWS):
        rows = min(BLOCK_ROWS, n - b0)
        m = rows * cw
        for p in range(passes):
            j0 = p * cw
            a, s = _block_values(x, f64, flat, b0, rows, j0, cw, buf)
            e = s + m
            e8 = s + m // LANES * LANES
            # pass 1: count, sum, min, max (the last few values of a shard outside the lanes)
            _vx_moments(a, s, e8, lanes)
            for q in range(cw):
                t_sum[q] = 0.0
                t_nan[q] = 0
                t_lo[q] = np.inf
                t_hi[q] = -np.inf
                t_m2[q] = 0.0
            for i in range(e8, e):
                q = (i - s) % cw
                v = a[i]
                if v == v:
                    t_sum[q] += v
                    t_lo[q] = v if v < t_lo[q] else t_lo[q]
                    t_hi[q] = v if v > t_hi[q] else t_hi[q]
                else:
                    t_nan[q] += 1
            for q in range(cw):
                j = j0 + q
                block_sum = _fold(lanes, 0, q, cw, tmp) + t_sum[q]
                nans = int(_fold(lanes, LANES, q, cw, tmp)) + t_nan[q]
                lo_q = t_lo[q]
                hi_q = t_hi[q]
                for r in range(q, LANES, cw):
                    lo_q = lanes[2 * LANES + r] if lanes[2 * LANES + r] < lo_q else lo_q
                    hi_q = lanes[3 * LANES + r] if lanes[3 * LANES + r] > hi_q else hi_q
                mn[j] = lo_q if lo_q < mn[j] else mn[j]
                mx[j] = hi_q if hi_q > mx[j] else mx[j]
                nan_count[j] += nans
                total[j] += block_sum
                b_count[q] = rows - nans
                b_mean[q] = block_sum / b_count[q] if b_count[q] > 0 else 0.0
            # pass 2: M2 about the block mean, and each value's bin (+ its histogram copy)
            for lane in range(LANES):
                prm[p, lane] = b_mean[lane % cw]
            _vx_m2_bins(a, s, e8, prm[p], offs[p], period - 1, bins, idx, qlanes)
            for i in range(e8, e):
                q = (i - s) % cw
                v = a[i]
                if v == v:
                    d = v - b_mean[q]
                    t_m2[q] += d * d
                t = _bin(v, prm[p, LANES + q], prm[p, 2 * LANES + q], prm[p, 3 * LANES + q],
                         prm[p, 4 * LANES + q], bins)
                idx[i - s] = t + offs[p, ((i - s) // LANES & (period - 1)) * LANES + (i - s) % LANES]
            if not all_fast:
                for q in range(cw):
                    j = j0 + q
                    if not fast[j]:
                        edges = _edges(lo[j], hi[j], bins)
                        for i in range(q, m, cw):
                            t = _bin_exact(a[s + i], lo[j], hi[j], edges, bins)
                            idx[i] = t + offs[p, (i // LANES & (period - 1)) * LANES + i % LANES]
            # the histogram
            if packed:
                for i in range(m):
                    h[idx[i]] += 1
            else:
                for i in range(m):
                    if idx[i] < bins:
                        hist[j0 + i % cw, idx[i]] += 1
            # merge the block into the shard (Chan et al.)
            for q in range(cw):
                j = j0 + q
                k = b_count[q]
                if k == 0:
                    continue
                block_m2 = _fold(qlanes, 0, q, cw, tmp) + t_m2[q]
                na = count[j]
                nt = na + k
                share = k / nt
                delta = b_mean[q] - mean[j]
                mean[j] += delta * share
                m2[j] += block_m2 + delta * delta * (na * share)
                count[j] = nt
    if packed:
        for j in range(c):
            for sub in range(subs):
                base = (sub * c + j) * stride
                for t in range(bins):
                    hist[j, t] += h[base + t]
    return count, nan_count, total, mean, m2, mn, mx, hist


@njit(cache=True, nogil=True)
def _finite_range(x):
    """Min and max of the finite values of each column of x (n, c); inf and -inf when none."""
    n, c = x.shape
    mn = np.full(c, np.inf)
    mx = np.full(c, -np.inf)
    if n == 0 or c == 0:
        return mn, mx
    f64 = _f64_flat(x)
    flat = _flat(x)
    cw = c if LANES % c == 0 else 1
    buf = np.empty(BLOCK_ROWS * cw)
    lanes = np.empty(2 * LANES)
    for b0 in range(0, n, BLOCK_ROWS):
        rows = min(BLOCK_ROWS, n - b0)
        for j0 in range(0, c, cw):
            a, s = _block_values(x, f64, flat, b0, rows, j0, cw, buf)
            e = s + rows * cw
            e8 = s + rows * cw // LANES * LANES
            _vx_finite_range(a, s, e8, lanes)
            for lane in range(LANES):
                j = j0 + lane % cw
                mn[j] = lanes[lane] if lanes[lane] < mn[j] else mn[j]
                mx[j] = lanes[LANES + lane] if lanes[LANES + lane] > mx[j] else mx[j]
            for i in range(e8, e):
                v = a[i]
                j = j0 + (i - s) % cw
                if v - v == 0.0:            # finite (false for NaN and +-inf)
                    mn[j] = v if v < mn[j] else mn[j]
                    mx[j] = v if v > mx[j] else mx[j]
    return mn, mx
