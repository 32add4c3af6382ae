%%writefile exercise_queue.py
import queue
import time

STOP = None


def consume(items, timeout):
    """Return the items taken from `items` until STOP; raise TimeoutError if none comes for `timeout` s."""
    received = []
    last_item = time.monotonic()
    while True:
        try:
            item = items.get_nowait()  # asks, then naps: no core burnt, but still polling
        except queue.Empty:
            if time.monotonic() - last_item > timeout:
                raise TimeoutError("the producer is gone") from None
            time.sleep(0.01)
            continue
        last_item = time.monotonic()
        if item is STOP:
            return received
        received.append(item)
