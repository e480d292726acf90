"""Validation of incoming stream messages into :class:`Event` (to store) and :class:`Request` (to answer).

Limits (anything outside them makes the message ``invalid``; nothing here raises):

- the received text is at most ``MAX_TEXT_CHARS`` (1 MiB) and nested at most ``MAX_DEPTH`` (32) deep;
- an ``invalid`` event keeps at most ``INVALID_KEEP_CHARS`` (4 kB) of what was received, followed by a
  ``[truncated: N characters received, sha256 H]`` note (length and hash of the whole text), so garbage
  cannot fill the disk;
- ``user``, ``exp``, ``course``, ``hardware`` and ``payload.log`` are strings of 1..256 characters
  without control characters (U+0000-U+001F, U+007F) or lone surrogates; ``/`` and ``..`` are allowed
  (they are data, never paths, here);
- ``t`` is an integer number of ms in 0..2**53 (an integer-valued float such as ``1.67e12`` is
  accepted, booleans, other floats, NaN and strings are not); it is required except on requests;
- ``payload`` is an object.

Which messages are answered: a ``request`` (valid or not) and a ``feedback`` whose state or subject is
not in the lists get the SPEC error object when they cannot be served. Other invalid text (garbage,
other types) is stored as an ``invalid`` event and never answered: every client of a stream receives
every message, so answering garbage would spam all of them. ``response`` messages are ignored entirely.
"""

import hashlib
import json
import json.scanner
import math
import re
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Dict, Mapping, Optional, Tuple, cast

from practable_analytics.cells import FEEDBACK_STATES
from practable_analytics.events import Event
from practable_analytics.experiments import Experiment, Registry

__all__ = ["Event", "Parsed", "Request", "feedback_subjects", "parse_message", "parse_text"]

MAX_TEXT_CHARS = 1 << 20
INVALID_KEEP_CHARS = 4096
MAX_DEPTH = 32
MAX_ID_CHARS = 256
MAX_T = 1 << 53
STORED_TYPES = ("analytics", "log", "feedback", "request")
DEFAULT_SUBJECTS = ("Workbook", "Remote work", "Hardware", "UI", "LA", "Other")

_BAD_ID_CHARS = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_SURROGATE = re.compile("[\ud800-\udfff]")
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
# The standard decoder's own scanner, called directly for the usual frame (one JSON value, no
# surrounding whitespace); anything else goes through json.loads for its exact verdict.
_SCAN = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]  # (typeshed: the class)


def loads(text: str) -> Any:
    """``json.loads(text)``, with less call overhead for a frame that is exactly one JSON value."""
    try:
        value, end = _SCAN(text, 0)
    except StopIteration:
        return json.loads(text)  # raises the library's error
    if end != len(text):
        return json.loads(text)  # whitespace around it (accepted) or extra data (an error)
    return value


@dataclass(frozen=True)
class Request:
    """A valid request: common fields checked, ``content`` a string; content fields checked later."""

    user: str
    exp: str
    course: str
    content: str
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class Parsed:
    """The outcome of reading one message: what to store, what to answer."""

    event: Optional[Event] = None
    request: Optional[Request] = None
    error: Optional[Dict[str, Any]] = None


IGNORED = Parsed()


def valid_id(value: object) -> bool:
    """True for a str of 1..256 characters without control characters or lone surrogates."""
    # Fast path: printable ASCII has neither (the usual id); anything else goes through the pattern.
    return (
        type(value) is str
        and 0 < len(value) <= MAX_ID_CHARS
        and ((value.isascii() and value.isprintable()) or not _BAD_ID_CHARS.search(value))
    )


def parse_t(value: object) -> Optional[int]:
    """Milliseconds as int, or None when ``value`` is not an acceptable timestamp."""
    if type(value) is int:
        return value if 0 <= value <= MAX_T else None
    if type(value) is float and math.isfinite(value) and value.is_integer() and 0 <= value <= MAX_T:
        return int(value)
    return None


def error_object(user: object, request: object, reason: str) -> Dict[str, Any]:
    """The SPEC error answer; ``user``/``request`` are echoed only when they are valid strings."""
    return {
        "type": "response",
        "content": "error",
        "user": user if valid_id(user) else None,
        "error": reason,
        "request": request if valid_id(request) else None,
    }


def safe_text(text: str) -> str:
    """``text`` capped at 1 MiB (with a truncation note) and with lone surrogates escaped."""
    if len(text) > MAX_TEXT_CHARS:
        text = f"{text[:MAX_TEXT_CHARS]}\n[truncated: {len(text)} characters received]"
    if not text.isascii() and _SURROGATE.search(text):
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def dump(message: object) -> str:
    """JSON text of a received object for ``Event.raw`` (ASCII, so always storable)."""
    try:
        return json.dumps(message, separators=(",", ":"), default=repr)
    except (ValueError, TypeError, RecursionError):
        return f"<unserialisable {type(message).__name__}>"


def too_deep(text: str) -> bool:
    """True when JSON text nests objects/arrays deeper than ``MAX_DEPTH`` (strings ignored)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return bool(brackets) and max(accumulate(map(_BRACKET_STEP.__getitem__, brackets))) > MAX_DEPTH


def _invalid_event(raw: str, stream: Optional[str]) -> Event:
    return Event(
        type="invalid", user=None, exp=None, course=None, hardware=None, t=None, log=None, node=None,
        raw=raw, stream=stream,
    )  # fmt: skip


def invalid(raw: str, stream: Optional[str]) -> Event:
    """An ``invalid`` event holding the received text (its first 4 kB, then length and sha256)."""
    if len(raw) > INVALID_KEEP_CHARS:
        digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()
        raw = f"{raw[:INVALID_KEEP_CHARS]}\n[truncated: {len(raw)} characters received, sha256 {digest}]"
    return _invalid_event(safe_text(raw), stream)


def invalid_frame(data: bytes, stream: Optional[str], *, binary: bool) -> Event:
    """An ``invalid`` event for a frame that is not UTF-8 text (first 4 kB, then length and sha256)."""
    head = "binary frame: " if binary else ""
    text = data[:INVALID_KEEP_CHARS].decode("utf-8", "backslashreplace")
    if len(data) > INVALID_KEEP_CHARS:
        digest = hashlib.sha256(data).hexdigest()
        text = f"{text}\n[truncated: {len(data)} bytes received, sha256 {digest}]"
    return _invalid_event(safe_text(head + text), stream)


def parse_text(text: object, registry: Registry, stream: Optional[str] = None) -> Parsed:
    """Parse received text (size and depth limits first) and validate the message in it."""
    if type(text) is not str:
        text = dump(text)
    if len(text) > MAX_TEXT_CHARS or too_deep(text):
        return Parsed(event=invalid(text, stream))
    try:
        message = loads(text)
    except (ValueError, RecursionError):
        return Parsed(event=invalid(text, stream))
    return parse_message(message, registry, stream, raw=text)


def _subjects(exp: Optional[Experiment], course: str) -> Tuple[str, ...]:
    if exp is None:
        return DEFAULT_SUBJECTS
    c = exp.courses.get(course)
    if c is None:
        return exp.feedback_subjects
    prefix = len(exp.name) + len(course) + 2
    return exp.feedback_subjects + tuple(c.cells) + tuple(g[prefix:] for g in c.cells)


def feedback_subjects(exp: Optional[Experiment], course: str) -> Tuple[str, ...]:
    """The subjects a feedback report of ``exp``/``course`` may name to be counted (the one rule,
    used for live messages and for imported legacy CSVs)."""
    return _subjects(exp, course)


def parse_message(
    message: object, registry: Registry, stream: Optional[str] = None, raw: Optional[str] = None
) -> Parsed:
    """Validate one decoded message. ``raw`` is the received text when there is one."""
    if type(message) is not dict:
        return Parsed(event=invalid(dump(message) if raw is None else raw, stream))
    mtype = message.get("type")
    if mtype == "response":
        return IGNORED
    payload = message.get("payload")
    user = message.get("user")
    exp_name = message.get("exp")
    course = message.get("course")
    t = parse_t(message.get("t"))
    hardware = message.get("hardware")
    problem = None
    if mtype not in STORED_TYPES:
        problem = "type"
    elif not valid_id(user):
        problem = "user"
    elif not valid_id(exp_name):
        problem = "exp"
    elif not valid_id(course):
        problem = "course"
    elif t is None and (mtype != "request" or message.get("t") is not None):
        problem = "t"
    elif hardware is not None and not valid_id(hardware):
        problem = "hardware"
    elif type(payload) is not dict:
        problem = "payload"
    elif mtype == "analytics" and not valid_id(payload.get("log")):
        problem = "payload.log"
    received_text = raw is not None
    if raw is None:
        raw = dump(message)  # ASCII: no surrogates to escape
    if problem is not None or len(raw) > MAX_TEXT_CHARS:
        error = None
        if mtype == "request":
            content = payload.get("content") if type(payload) is dict else None
            error = error_object(user, content, f"invalid field: {problem or 'size'}")
        return Parsed(event=invalid(raw, stream), error=error)
    assert isinstance(payload, dict) and isinstance(user, str)
    assert isinstance(exp_name, str) and isinstance(course, str)
    if received_text:
        raw = safe_text(raw)
    exp = registry.experiment(exp_name)
    log = payload.get("log")
    if mtype != "analytics" and not valid_id(log):  # an analytics log was checked above
        log = None
    node = None
    if mtype == "analytics" and exp is not None:
        node = exp.log_map.get(log)  # type: ignore[arg-type]
    state = subject = None
    error = None
    request = None
    if mtype == "feedback":
        state, subject = payload.get("state"), payload.get("subject")
        if state not in FEEDBACK_STATES:
            error = error_object(user, "feedback", "invalid field: payload.state")
        elif type(subject) is not str or subject not in _subjects(exp, course):
            error = error_object(user, "feedback", "invalid field: payload.subject")
        if error is not None:
            state = subject = None
    elif mtype == "request":
        content = payload.get("content")
        if valid_id(content):
            content = cast(str, content)
            request = Request(user=user, exp=exp_name, course=course, content=content, payload=payload)
        else:
            error = error_object(user, None, "invalid field: payload.content")
    mtype = cast(str, mtype)  # one of STORED_TYPES by now
    event = Event(
        type=mtype, user=user, exp=exp_name, course=course, hardware=hardware, t=t, log=log, node=node,
        raw=raw, state=state, subject=subject, stream=stream,
    )  # fmt: skip
    return Parsed(event=event, request=request, error=error)
