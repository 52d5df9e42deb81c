"""The errors the CLI reports in one line: bad input (exit code 2) and a run that had to stop (exit code 1)."""


class InputError(Exception):
    """Bad user input (a file, a line, a field, an option). The message says exactly where."""


def at(path, line: int | None = None, field: str | None = None) -> str:
    """Format a location as `file:line: field 'x'` for error messages."""
    where = str(path)
    if line is not None:
        where += f":{line}"
    if field is not None:
        where += f": field '{field}'"
    return where


class RunError(Exception):
    """A run that stopped on its own account (the loss diverged, ...): the CLI prints it and exits with code 1."""
