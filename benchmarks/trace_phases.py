"""Where a whole ``hpcdist run`` process spends its time, per rank, at 1 and 2 ranks (issue 14).

    python benchmarks/trace_phases.py                       # stats job, 256 MB, warm cache, P = 1 and 2
    python benchmarks/trace_phases.py --mb 2 --repeats 1    # a quick check of the script

Each rank runs ``hpcdist run`` under a small wrapper that stamps the start and end of the run's
phases (imports, MPI_Init, the agreed checks, the warm-up, the map pass, the output write, the
atexit handlers) with the wall time since ``mpiexec`` was launched and the rank's CPU seconds.
The table gives, per phase, its start, wall duration and CPU duration at 1 rank and on each of 2
ranks (median over repeats), then launch -> exit. A phase whose wall time exceeds its CPU time
waited (for another rank, for I/O, or for a core). Only the run's own functions are wrapped;
nothing in hpcdist changes.
"""

from __future__ import annotations

import argparse
import ast
import functools
import importlib.abc
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCS = {"hpcdist.startup": ["check_allocation"], "hpcdist.comm": ["world", "run_spmd", "exit_process"],
         "hpcdist.api": ["_load"], "hpcdist.runtime": ["warm_up", "gather_hosts", "gather_rows", "open_source"]}
METHODS = {"hpcdist.comm": {"World": ["agree", "synced_wtime"]},
           "hpcdist.runtime": {"_Passes": ["_one_pass", "_finish_pass", "_write_output"]},
           "hpcdist.control": {"Control": ["end_pass"]}}


def rank_wrapper(argv: list[str]) -> None:
    """Inside one rank: wrap the phases, run ``hpcdist``, write the stamps at atexit."""
    launched, out = float(os.environ["TRACE_LAUNCHED"]), os.environ["TRACE_DIR"]
    records: list[tuple] = []
    seen: dict[str, int] = {}

    def now() -> tuple[float, float]:
        return time.time() - launched, time.process_time()

    def wrap(fn, name):
        @functools.wraps(fn)
        def stamped(*a, **k):
            w0, c0 = now()
            try:
                return fn(*a, **k)
            finally:
                w1, c1 = now()
                seen[name] = seen.get(name, 0) + 1          # World.agree #1, #2, ... in call order
                records.append((name if seen[name] == 1 else f"{name} #{seen[name]}", w0, w1 - w0, c1 - c0))
        return stamped

    class Hook(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name not in FUNCS and name not in METHODS:
                return None
            sys.meta_path.remove(self)
            try:
                spec = importlib.util.find_spec(name)
            finally:
                sys.meta_path.insert(0, self)
            load = spec.loader.exec_module

            def exec_module(module):
                w0, c0 = now()
                load(module)
                w1, c1 = now()
                records.append((f"import {name}", w0, w1 - w0, c1 - c0))
                for f in FUNCS.get(name, []):
                    setattr(module, f, wrap(getattr(module, f), f))
                for cls, names in METHODS.get(name, {}).items():
                    klass = getattr(module, cls)
                    for m in names:
                        setattr(klass, m, wrap(klass.__dict__[m], f"{cls}.{m}"))
            spec.loader.exec_module = exec_module
            return spec

    def save() -> None:
        records.append(("atexit (before MPI_Finalize)", *now()[:1], 0.0, 0.0))
        rank = os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
        Path(out, f"rank{rank}.txt").write_text("\n".join(repr(r) for r in records))

    import atexit
    atexit.register(save)
    records.append(("python started (CPU: so far)", *now()[:1], 0.0, time.process_time()))
    sys.meta_path.insert(0, Hook())
    sys.argv = ["hpcdist", *argv]
    from hpcdist.cli import main
    raise SystemExit(main())


def one_launch(ranks: int, args: list[str], env: dict) -> tuple[list[list[tuple]], float]:
    from hpcdist.bench import launch
    with tempfile.TemporaryDirectory() as d:
        t0 = time.time()
        cmd = launch.mpi_cmd(ranks, [sys.executable, __file__, "--rank-wrapper", *args])
        launch.launch(cmd, launch.launch_env({**env, "TRACE_LAUNCHED": repr(t0), "TRACE_DIR": d}))
        total = time.time() - t0
        ranks_recs = [[ast.literal_eval(line) for line in Path(d, f"rank{r}.txt").read_text().splitlines()]
                      for r in range(ranks)]
    return ranks_recs, total


def table(runs: dict[int, list[tuple[list[list[tuple]], float]]]) -> str:
    med = statistics.median
    columns = [(1, 0), (2, 0), (2, 1)]
    names: list[str] = []
    for recs, _ in runs[2] + runs[1]:
        for rank in recs:
            for rec in rank:
                if rec[0] not in names:
                    names.append(rec[0])
    head = "| phase | " + " | ".join(f"P={p} rank {r}: start, wall, CPU s" for p, r in columns) + " |"
    lines = [head, "|---|" + "---|" * len(columns)]
    for name in names:
        cells = []
        for p, r in columns:
            got = [next((x for x in recs[r] if x[0] == name), None) for recs, _ in runs[p]]
            got = [g for g in got if g is not None]
            cells.append(f"{med(g[1] for g in got):.3f}, {med(g[2] for g in got):.3f}, {med(g[3] for g in got):.3f}"
                         if got else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| launch -> mpiexec exit | " + " | ".join(f"{med(t for _, t in runs[p]):.3f}" for p, _ in columns) + " |")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--rank-wrapper":
        rank_wrapper(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=256, help="input size (stats job, 4 float64 columns)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--data-dir", default=str(ROOT / "bench-data"))
    a = ap.parse_args()
    from hpcdist.bench import data as bench_data
    from hpcdist.bench import launch
    rows = a.mb * (1 << 20) // 32
    spec = bench_data.input_spec("h5", rows, 4, a.data_dir)
    bench_data.ensure_h5(spec, rows, 4, lambda s: print(s, file=sys.stderr))
    job = str(ROOT / "jobs" / "stats.py")
    params = ["--param", "lo=-5", "--param", "hi=5"]
    with tempfile.TemporaryDirectory() as tmp:
        env = {"NUMBA_CACHE_DIR": os.path.join(tmp, "cache")}
        launch.launch([*launch.hpcdist_cmd(), "compile", job, "--input", spec, *params], launch.launch_env(env))
        runs: dict[int, list] = {1: [], 2: []}
        for _ in range(a.repeats):
            for ranks in (1, 2):                 # interleaved
                out = os.path.join(tmp, "out.h5")
                runs[ranks].append(one_launch(ranks, ["run", job, "--input", spec, *params, "--output", out], env))
                os.unlink(out)
    print(table(runs))


if __name__ == "__main__":
    main()
