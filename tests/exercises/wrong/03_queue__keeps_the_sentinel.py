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
            raise TimeoutError("the producer is gone") from None
        received.append(item)  # STOP ends up in the list
        if item is STOP:
            return received
