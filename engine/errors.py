"""The base of every error that reports a user's mistake (bad input, missing weights)."""


class XDepthError(Exception):
    """A problem with what the user asked for; the message says what and how to fix it."""


def whole_number(
    value: object, name: str, minimum: int = 1, error: type[Exception] = XDepthError
) -> int:
    """`value` as an int if it is a whole number >= `minimum` (not a bool), else `error`
    naming `name`: the one check behind every count, size and thread option."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise error(f"{name} must be {wanted}, got {value!r}")
    return int(value)
