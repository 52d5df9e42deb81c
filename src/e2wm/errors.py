"""The one exception for bad input: the CLI prints its message on one line and exits with code 2."""


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
