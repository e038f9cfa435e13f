"""The exceptions that end a run with one line: bad input (exit code 2) and a job's bug (exit 1)."""

EXIT_USAGE = 2
EXIT_FAILURE = 1
EXIT_REQUEUE = 75  # EX_TEMPFAIL: stopped by a signal after writing the checkpoint; run again to resume


class UserError(Exception):
    """A bad input, parameter or path, reported as one line on stderr and exit code 2.

    ``agreed`` is True when every rank raised the same error after a collective verdict, so the
    error can end the run without ``MPI_Abort`` and be printed once (by rank 0).
    """

    def __init__(self, message: str, *, agreed: bool = False) -> None:
        super().__init__(message)
        self.agreed = agreed


class JobError(Exception):
    """A bug in the job's code that hpcdist caught (a partial whose layout changed, a partial that
    is not numeric arrays): one line on stderr naming the job file and function, exit code 1."""


class WriteFailed(Exception):
    """Writing the output, a checkpoint or ``hpcdist gen``'s file failed (full disk, quota, I/O
    error): one line ``cannot write output PATH: REASON``, exit code 1, nothing at the final path.

    ``agreed`` is True when every rank raised it after rank 0's verdict, so no rank must abort.
    """

    def __init__(self, message: str, *, agreed: bool = False) -> None:
        super().__init__(message)
        self.agreed = agreed
