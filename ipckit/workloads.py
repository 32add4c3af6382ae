"""The pipeline's producers and consumers now live in :mod:`ipckit.lessons.workloads`; this name still imports them."""
from .lessons.workloads import *  # noqa: F403
