"""The one exception type the CLI turns into a one-line error and a non-zero exit."""


class TrainerError(Exception):
    """A problem with the user's input or environment (not a bug): reported as one line."""


def one_line(error: BaseException) -> str:
    """The error's own message. A DataLoader worker process (--workers N) raises its error again in the parent with the
    worker's whole traceback in the message ("Caught TrainerError in DataLoader worker process 1. Original Traceback
    ... TrainerError: <message>"): the message is its last line's."""
    text = str(error).strip()
    if "Original Traceback" not in text:
        return text
    last = text.splitlines()[-1]
    marker = f"{type(error).__name__}: "
    return last.split(marker, 1)[1] if marker in last else last
