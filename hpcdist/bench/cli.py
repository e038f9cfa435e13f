"""``hpcdist bench strong|weak|report|compare``: the command line of the benchmark harness.

    mpiexec -n 2 hpcdist bench strong jobs/stats.py --rows 200_000_000 --ranks 1,2 --repeat 5 --out bench/
    mpiexec -n 2 hpcdist bench weak jobs/stats.py --rows-per-rank 50_000_000 --ranks 1,2 --out bench/
    hpcdist bench report bench/
    hpcdist bench compare jobs/stats.py --rows 67_108_864 --cols 4 --out bench/compare/

Bad input: one line, exit 2. A peer that disagrees with hpcdist: one line naming it, exit 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from hpcdist.argtypes import whole_number as _int
from hpcdist.errors import EXIT_FAILURE, EXIT_USAGE, UserError


def add_bench_parser(sub: Any) -> None:
    """Register ``hpcdist bench`` on the top-level subparsers (called by hpcdist/cli.py)."""
    bench = sub.add_parser("bench", help="scaling studies: strong / weak / report / compare (peers)",
                           description="Benchmark harness: time a job at several rank counts with the machine's "
                                       "limits measured in the same run; compose and plot results; compare peers.")
    # the subcommands' parsers are of the class hpcdist/cli.py gave ``bench`` (one-rank usage errors)
    kinds = bench.add_subparsers(dest="bench_command", required=True, parser_class=type(bench))

    def common(p, what: str) -> None:
        p.add_argument("job", help="job file, e.g. jobs/stats.py")
        p.add_argument("--out", required=True, help="directory for the JSON record, CSV, markdown and plots")
        p.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE",
                       help="job parameter (repeatable)")
        p.add_argument("--cols", type=_int, default=None, help=f"columns of the generated float64 data ({what})")
        p.add_argument("--data-dir", default="bench-data",
                       help="where generated datasets are kept and reused (default bench-data/)")
        p.add_argument("--repeat", type=_int, default=None, help="timed repeats (default 5; compare: 3)")
        p.add_argument("--max-load", type=float, default=1.0,
                       help="the 1-minute load average of a quiet machine: the record says whether the run "
                            "started below it (0: no judgement)")
        p.add_argument("--wait-quiet", action="store_true",
                       help="wait (at most --wait-load s) for the load to fall to --max-load before timing; "
                            "without it the run starts at once, and points that other programs disturbed "
                            "(their CPU time during the point's runs) are flagged in the record and tables")
        p.add_argument("--wait-load", type=float, default=600.0, help="longest wait for a quiet machine, s")
        p.add_argument("--stream-mib", type=_int, default=256, help="MiB per array and rank of the memory "
                       "bandwidth benchmark (default 256)")
        p.add_argument("--no-limits", action="store_true", help="skip the memory bandwidth and allreduce benchmarks")

    for kind in ("strong", "weak"):
        p = kinds.add_parser(kind, help=f"{kind} scaling: the job at each rank count of --ranks, in this launch")
        common(p, "default 1")
        if kind == "strong":
            size = p.add_mutually_exclusive_group(required=True)
            size.add_argument("--rows", type=_int, help="total rows (data made once in --data-dir)")
            size.add_argument("--input", "-i", help="an existing input spec, used as is at every rank count")
        else:
            p.add_argument("--rows-per-rank", type=_int, required=True, help="rows per rank")
        p.add_argument("--ranks", default=None, help="rank counts, e.g. 1,2 (default: 1, 2, 4, ... and the launch "
                       "size); at most the launch size")
        p.add_argument("--data", default="auto", choices=["auto", "h5", "synthetic", "range"],
                       help="auto: range:N for jobs that make their own numbers (montecarlo_pi), else an HDF5 "
                            "file of seeded N(0,1) float64 in --data-dir")
        p.add_argument("--warmup", type=_int, default=1, help="untimed runs per rank count first (default 1)")
        p.add_argument("--shard-rows", type=_int, help="rows per shard (default: the runtime's)")
        p.add_argument("--schedule", default="auto", choices=["auto", "static", "dynamic"])
        p.add_argument("--checkpoint-every", type=float, metavar="SECONDS",
                       help="checkpoint this often during the timed runs (times the checkpoint phase)")
        p.add_argument("--cores", type=_int, help="cores per node to assume (default: the ranks' CPU affinity)")
        p.set_defaults(func=_cmd_study, bench_kind=kind)

    rep = kinds.add_parser("report", help="tables (markdown, CSV) and plots from the records in a directory")
    rep.add_argument("dir", help="directory holding records (searched recursively)")
    rep.set_defaults(func=_cmd_report)

    cmp_ = kinds.add_parser("compare", help="the stats job against hand-written MPI, numpy, multiprocessing, dask")
    common(cmp_, "default 4")
    size = cmp_.add_mutually_exclusive_group(required=True)
    size.add_argument("--rows", type=_int, help="rows of the dataset (made once in --data-dir)")
    size.add_argument("--input", "-i", help="an existing FILE.h5:/dataset")
    cmp_.add_argument("--workers", type=_int, default=2, help="ranks / processes / dask workers (default 2)")
    cmp_.add_argument("--peers", default=",".join(_peer_names()),
                      help="which peers (default all): " + ", ".join(_peer_names()))
    cmp_.set_defaults(func=_cmd_compare)


def _peer_names():
    return ("hpcdist", "handwritten", "numpy", "multiprocessing", "dask", "dask_threads")


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _params(items):
    from hpcdist.params import parse_assignments
    return parse_assignments(items)


# ---- strong / weak ------------------------------------------------------------------------------

def _cmd_study(args: argparse.Namespace) -> int:
    from hpcdist.startup import check_allocation, require_mpi4py
    require_mpi4py()
    check_allocation()
    from hpcdist import numba_env
    from hpcdist.comm import run_spmd, world

    w = world()
    numba_env.configure(w.node_size)

    def body() -> int:
        from hpcdist.bench import measure, records, report

        def ranks_default() -> list[int]:
            out, p = [], 1
            while p < w.size:
                out.append(p)
                p *= 2
            return out + [w.size]

        opts = w.agree(lambda: measure.StudyOptions(
            kind=args.bench_kind, job_path=args.job,
            ranks=measure.parse_ranks(args.ranks) if args.ranks else ranks_default(),
            rows=getattr(args, "rows", None), rows_per_rank=getattr(args, "rows_per_rank", None),
            cols=args.cols or 1, data=args.data, data_dir=args.data_dir, input=getattr(args, "input", None),
            params=_params(args.param), shard_rows=args.shard_rows, schedule=args.schedule,
            checkpoint_every=args.checkpoint_every, repeat=5 if args.repeat is None else args.repeat,
            warmup=args.warmup, out=args.out, cores=args.cores, max_load=args.max_load, wait_quiet=args.wait_quiet,
            wait_load=args.wait_load,
            stream_mib=args.stream_mib, limits=not args.no_limits))
        rec = measure.study(opts, w.comm, _say)
        if w.rank == 0:
            path = records.save(rec, args.out)
            _say(f"hpcdist bench: wrote {path}")
            print(report.markdown(report.compose([(path, rec)])), end="")
            built = report.build(args.out, _say)
            _say(f"hpcdist bench: {args.out}: summary.md, summary.csv"
                 + "".join(f", {os.path.basename(p)}" for p in built.get("plots", []))
                 + f" from {len(built['records'])} record(s)")
        return 0

    return run_spmd(body, w.comm)


# ---- report -------------------------------------------------------------------------------------

def _cmd_report(args: argparse.Namespace) -> int:
    from hpcdist.bench import report
    try:
        built = report.build(args.dir, _say)
    except UserError as exc:
        print(f"hpcdist: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(built["markdown"], end="")
    _say(f"hpcdist bench report: {len(built['records'])} record(s) -> {os.path.join(args.dir, 'summary.md')}, "
         f"summary.csv" + "".join(f", {os.path.basename(p)}" for p in built.get("plots", [])))
    return 0


# ---- compare ------------------------------------------------------------------------------------

def _cmd_compare(args: argparse.Namespace, peer_factory=None) -> int:
    try:
        return _compare(args, peer_factory)
    except UserError as exc:
        print(f"hpcdist: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _compare(args: argparse.Namespace, peer_factory=None) -> int:
    import shutil

    from hpcdist.bench import checks, data, machine, peers, quiet, records, report

    wanted = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = [p for p in wanted if p not in _peer_names()]
    if unknown:
        raise UserError(f"--peers: unknown {', '.join(unknown)}; known: {', '.join(_peer_names())}")
    if "hpcdist" not in wanted:
        raise UserError("--peers must include hpcdist (the reference every peer is checked against)")
    if args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    repeat = 3 if args.repeat is None else args.repeat
    if repeat < 1:
        raise UserError(f"--repeat must be >= 1, got {repeat}")
    given = _params(args.param)
    if "lo" not in given and "hi" not in given:
        given.update(lo="-5", hi="5")        # one pass, and the range the hand-written script needs
    cols = args.cols or 4
    if args.input:
        spec = args.input
    else:
        if args.rows < 1:
            raise UserError(f"--rows must be >= 1, got {args.rows}")
        spec = data.input_spec("h5", args.rows, cols, args.data_dir)
        data.ensure_h5(spec, args.rows, cols, _say)
    os.makedirs(args.out, exist_ok=True)
    tmp = peers.new_tmp(args.out)
    try:
        setup = peers.make_setup(args.job, spec, given, args.workers, tmp)
        chosen = []
        for p in (peer_factory or peers.default_peers)(args.workers):
            family = p.name.split("_n")[0]
            if family in wanted and p.name not in {c.name for c in chosen}:
                chosen.append(p)
        load = quiet.start_load(args.max_load, args.wait_quiet, args.wait_load, _say)
        date = machine.now_utc()
        limits = {}
        if not args.no_limits:
            _say("hpcdist bench compare: memory bandwidth and allreduce ...")
            limits = peers.memory_limits(sorted({1, args.workers}), args.stream_mib, setup.env)
        try:
            result = peers.compare(setup, chosen, repeat, _say)
        except checks.PeerMismatch as exc:
            print(f"hpcdist bench compare: error: {exc}", file=sys.stderr)
            return EXIT_FAILURE
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for entry in result["peers"].values():
        w = str(entry.get("workers"))
        if entry.get("kernel_GBps_per_rank") and w in limits:
            bw = limits[w]["memory_bandwidth"]["read"]["per_rank_GBps"]
            entry["membw_read_per_rank_GBps"] = bw
            entry["kernel_fraction_of_memory_bandwidth"] = entry["kernel_GBps_per_rank"] / bw
    rec = {
        "schema": records.SCHEMA_ID, "kind": "compare", "job": "stats",
        "job_path": machine.display_path(args.job),
        "params": given, "date": date, "date_end": machine.now_utc(), **machine.git_facts(),
        "machine": machine.describe(), "versions": machine.versions(), "loadavg_start": load,
        "loadavg_end": quiet.loadavg(), "quiet_at_start": bool(load[0] <= args.max_load) if args.max_load > 0
        else None, "waited_for_quiet": bool(args.wait_quiet and args.max_load > 0), "workers": args.workers,
        "repeat": repeat,
        "data": {"input": spec, "rows": setup.rows, "cols": setup.cols, "dtype": setup.dtype,
                 "data_bytes": setup.data_bytes, "lo": setup.lo.tolist(), "hi": setup.hi.tolist(),
                 "bins": setup.bins, "piece_rows": setup.piece_rows},
        "memory_bandwidth": limits[str(args.workers)]["memory_bandwidth"] if limits else None,
        "limits": limits, **result,
    }
    path = records.save(rec, args.out)
    _say(f"hpcdist bench compare: wrote {path}")
    print("\n".join(report.compare_markdown(rec, os.path.basename(path))))
    report.build(args.out, _say)
    return 0
