"""The workers that fail on purpose now live in :mod:`ipckit.lessons.faults`; this name still imports them."""
from .lessons.faults import *  # noqa: F403
