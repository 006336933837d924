"""The trainer's default log: one line on stdout, flushed at once, since runs are often followed through a log
file or a pipe."""
import unicodedata

# Control characters, Unicode line and paragraph separators (some log viewers break lines at them) and invisible
# format characters (a right-to-left override shows the rest of a line reversed).
_UNSAFE_CATEGORIES = ("Cc", "Zl", "Zp", "Cf")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def say(line: str) -> None:
    print(line, flush=True)


def escaped(text: str) -> str:
    """The text as one log line, what could break or disguise a line written as an escape (\\n, \\xNN, \\uNNNN), as
    the service writes its log: a file or job name cannot forge a line of its own."""
    if text.isascii() and text.isprintable():   # as nearly every line is
        return text
    return "".join(_escape(c) for c in text)


def _escape(c: str) -> str:
    if unicodedata.category(c) not in _UNSAFE_CATEGORIES:
        return c
    if c in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[c]
    code = ord(c)
    return f"\\x{code:02X}" if code <= 0xFF else f"\\u{code:04X}" if code <= 0xFFFF else f"\\U{code:08X}"
