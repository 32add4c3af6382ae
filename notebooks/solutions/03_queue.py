%%writefile exercise_queue.py
import queue

STOP = None


def consume(items, timeout):
    """Return the items taken from `items` until STOP; raise TimeoutError if none comes for `timeout` s."""
    received = []
    while True:
        try:
            item = items.get(timeout=timeout)  # sleeps until an item comes, for at most `timeout` s
        except queue.Empty:
            raise TimeoutError(f"no item for {timeout} s and no STOP: the producer is gone") from None
        if item is STOP:
            return received
        received.append(item)
