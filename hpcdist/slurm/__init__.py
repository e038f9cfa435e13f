"""Slurm: batch scripts rendered from templates and their submission (on top of the runtime).

- :mod:`hpcdist.slurm.templates` the batch scripts (``run``, ``requeue``, ``array``)
- :mod:`hpcdist.slurm.render`    validated parameters -> a batch script
- :mod:`hpcdist.slurm.submit`    ``sbatch`` (``--parsable``), the job id back
- :mod:`hpcdist.slurm.cli`       ``hpcdist slurm render|submit``

This package imports from the hpcdist core, never the reverse. What a run learns from its
allocation is :mod:`hpcdist.allocation`; the start-up checks (mpi4py, srun's MPI plugin) are
:mod:`hpcdist.startup`. Importing it is cheap (no MPI, no numpy).
"""
