# Bounded and never idle, but the results come out in the order the tasks finished.
from distributed import as_completed


def ordered_stream(client, func, items, in_flight=2):
    items = iter(items)
    finished = as_completed([client.submit(func, next(items), pure=False) for _ in range(in_flight)], timeout=60)
    for future in finished:
        for item in items:
            finished.add(client.submit(func, item, pure=False))
            break
        yield future.result(timeout=10)
