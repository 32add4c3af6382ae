import itertools

from distributed import as_completed


def ordered_stream(client, func, items, in_flight=2):
    """Yield func(item) for every item, in the items' order, with at most in_flight tasks on the cluster."""
    numbered = enumerate(items)  # hand-off numbers 0, 1, 2, ... taken one item at a time
    number_of = {}  # future on the cluster -> its hand-off number
    early = {}  # hand-off number -> result that finished before an earlier one
    next_out = 0
    finished = as_completed(timeout=60)

    def hand_out(count):
        for number, item in itertools.islice(numbered, count):
            future = client.submit(func, item, pure=False)
            number_of[future] = number
            finished.add(future)

    hand_out(in_flight)
    for future in finished:  # any task that finished, oldest or not
        early[number_of.pop(future)] = future.result(timeout=10)
        hand_out(1)  # a worker is free: give it the next item
        while next_out in early:  # every result whose turn has come
            yield early.pop(next_out)
            next_out += 1
