"""Slurm: batch scripts rendered from templates, submission, and what a run learns from its allocation.

- :mod:`hpcdist.slurm.env`       the ``SLURM_*`` facts recorded in the output, and the start-up checks
- :mod:`hpcdist.slurm.templates` the batch scripts (``run``, ``requeue``, ``array``)
- :mod:`hpcdist.slurm.render`    validated parameters -> a batch script
- :mod:`hpcdist.slurm.submit`    ``sbatch`` (``--parsable``), the job id back
- :mod:`hpcdist.slurm.cli`       ``hpcdist slurm render|submit``

This package imports from the hpcdist core, never the reverse: the core calls only
:func:`hpcdist.slurm.env.slurm_attrs` and :func:`hpcdist.slurm.env.check_allocation`. Importing it
is cheap (no MPI, no numpy).
"""
