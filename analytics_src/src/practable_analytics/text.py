"""Text from outside (file names, ids) made safe to echo on a terminal or in a log line."""

import unicodedata


def printable(text: str) -> str:
    """``text`` with every control, format, surrogate or unassigned character written as an escape
    (``\\x1b``, ``\\u202e``) and backslashes doubled, so one name stays one harmless line."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif unicodedata.category(ch)[0] == "C":
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)
