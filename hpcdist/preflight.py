"""Rank 0's checks before any work: everything a user could have got wrong, as one line each.

Run inside ``world.agree`` so a problem ends every rank with exit code 2 before any collective
that could hang, and before any file is touched.
"""

from __future__ import annotations

from typing import Any, Mapping

from hpcdist import paths
from hpcdist.context import ShardContext
from hpcdist.errors import UserError
from hpcdist.job import Job
from hpcdist.options import RunOptions
from hpcdist.output import check_output_path
from hpcdist.sources import open_source


def default_input(job: Job, params: Mapping[str, Any]) -> str:
    """The input spec of a run given no ``--input``: the job's own synthetic data."""
    if job.default_input is None:
        raise UserError(f"job {job.name} has no default input: give --input FILE.h5:/dataset")
    return job.default_input(params)


def check_run(job: Job, spec: str, options: RunOptions, params: Mapping[str, Any]) -> None:
    """Open the input once and check the options, the files and the job's own ``check``."""
    options.check()
    with open_source(spec) as source:
        paths.refuse_overlaps(spec, source.files(), options.output, options.checkpoint)
        paths.refuse_foreign(options.output, options.checkpoint)
        ndim = 1 + len(source.row_shape)
        if job.input_ndim is not None and source.row_shape != (0,) and ndim not in job.input_ndim:
            allowed = " or ".join(f"{n}-D" for n in job.input_ndim)
            raise UserError(f"{spec}: job {job.name} needs {allowed} data, got {ndim}-D shape "
                            f"{(source.rows, *source.row_shape)}")
        if job.check is not None:
            job.check(ShardContext(params=params, rows=source.rows, row_shape=source.row_shape,
                                   dtype=source.dtype))
    if options.output:
        check_output_path(options.output)
    if options.checkpoint:
        check_output_path(options.checkpoint, what="checkpoint")
