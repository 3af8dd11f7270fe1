"""The base of every error that reports a user's mistake (bad input, missing weights)."""


class XDepthError(Exception):
    """A problem with what the user asked for; the message says what and how to fix it."""
