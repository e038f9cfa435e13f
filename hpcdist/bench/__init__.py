"""``hpcdist bench``: scaling studies of a job, with the machine's limits and the peers measured in
the same run (strong / weak / report / compare).

Built on top of the runtime (:func:`hpcdist.runtime.run` under a communicator); nothing in the
runtime imports this package. Layout:

- ``metrics``: speedup, efficiency, Karp-Flatt, weak efficiency, oversubscription (pure functions)
- ``records``: the JSON record of one run (schema, validation, loading, saving)
- ``machine``: what a run ran on (hosts, cores, versions, git commit, load average)
- ``limits``: STREAM-style memory bandwidth and an MPI allreduce micro-benchmark
- ``measure``: timed runs of a job on sub-communicators of the launch (strong / weak)
- ``report``: tables (markdown, CSV) and PNG plots from the records of several runs
- ``peers``: the same statistics by numpy, multiprocessing, dask, the hand-written script (compare)
- ``cli``: the ``hpcdist bench`` subcommands
"""
