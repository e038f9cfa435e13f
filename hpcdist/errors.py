"""The one exception type that means "the user gave us something wrong" (exit code 2)."""

EXIT_USAGE = 2
EXIT_FAILURE = 1


class UserError(Exception):
    """A bad input, parameter or path, reported as one line on stderr and exit code 2.

    ``agreed`` is True when every rank raised the same error after a collective verdict, so the
    error can end the run without ``MPI_Abort`` and be printed once (by rank 0).
    """

    def __init__(self, message: str, *, agreed: bool = False) -> None:
        super().__init__(message)
        self.agreed = agreed
