# Bounded and ordered, but it waits for the oldest task: a free worker gets nothing while that task runs.
import collections
import itertools


def ordered_stream(client, func, items, in_flight=2):
    items = iter(items)
    waiting = collections.deque(client.submit(func, item, pure=False) for item in itertools.islice(items, in_flight))
    while waiting:
        result = waiting.popleft().result(timeout=60)
        for item in itertools.islice(items, 1):
            waiting.append(client.submit(func, item, pure=False))
        yield result
