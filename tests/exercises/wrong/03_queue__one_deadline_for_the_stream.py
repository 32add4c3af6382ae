%%writefile exercise_queue.py
import queue
import time

STOP = None


def consume(items, timeout):
    """Return the items taken from `items` until STOP; raise TimeoutError if none comes for `timeout` s."""
    received = []
    deadline = time.monotonic() + timeout  # wrong: one deadline for the whole stream, not one per item
    while True:
        try:
            item = items.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError(f"no item for {timeout} s and no STOP: the producer is gone") from None
        if item is STOP:
            return received
        received.append(item)
