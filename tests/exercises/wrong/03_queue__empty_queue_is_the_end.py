%%writefile exercise_queue.py
import queue

STOP = None


def consume(items, timeout):
    """Return the items taken from `items` until STOP; raise TimeoutError if none comes for `timeout` s."""
    received = []
    item = items.get(timeout=timeout)
    while item is not STOP:
        received.append(item)
        if items.empty():
            raise TimeoutError("nothing more: the producer is gone")
        item = items.get(timeout=timeout)
    return received
