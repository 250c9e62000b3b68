"""Errors a user can fix: the CLI prints them as one paragraph and exits with code 2."""


class UserError(Exception):
    """Bad input (a file, key, value, path or folder layout) that the user must correct."""


class DataError(UserError):
    """A dataset is missing, badly laid out, or holds unreadable images."""
