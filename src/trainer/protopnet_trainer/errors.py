"""The one exception type the CLI turns into a one-line error and a non-zero exit."""


class TrainerError(Exception):
    """A problem with the user's input or environment (not a bug): reported as one line."""
