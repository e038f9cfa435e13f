"""``hpcdist bench``: scaling studies of a job, with the machine's limits and the peers measured in
the same run (strong / weak / report / compare); also the harness benchmarks/*.py are written on.

Built on top of the runtime (:func:`hpcdist.runtime.run` under a communicator); nothing in the
runtime imports this package. Layout:

- ``metrics``: speedup, efficiency, Karp-Flatt, weak efficiency, oversubscription (pure functions)
- ``records``: the JSON record of one run (schema, validation, loading, saving)
- ``machine``: what a run ran on (hosts, cores, versions, git commit of the checkout, if any)
- ``quiet``: load average, CPU time other programs used meanwhile (disturbed runs), waiting
- ``launch``: the one ``mpiexec`` lookup; starting ``hpcdist run`` and other programs, timed
- ``data``: which data a job wants, its input spec, the seeded HDF5 file made once
- ``limits``: STREAM-style memory bandwidth and an MPI allreduce micro-benchmark
- ``measure``: timed runs of a job on sub-communicators of the launch (strong / weak)
- ``report``: tables (markdown, CSV) and PNG plots from the records of several runs
- ``numpy_stats``, ``checks``: the stats in plain numpy; is a peer's answer hpcdist's answer
- ``peers``: the same statistics by numpy, multiprocessing, dask, the hand-written script (compare)
- ``peer_scripts``: the hand-written mpi4py + numba program, shipped with the package
- ``cli``: the ``hpcdist bench`` subcommands
"""
