"""Relay host stand-in (see README.md); the code lives in relay_standin.py, one file on purpose."""

from .relay_standin import *  # noqa: F403
from .relay_standin import __all__  # noqa: F401
