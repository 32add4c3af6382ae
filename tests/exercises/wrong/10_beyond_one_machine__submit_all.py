# Ordered, but every item goes to the cluster at once: an endless producer would never stop.
def ordered_stream(client, func, items, in_flight=2):
    futures = [client.submit(func, item, pure=False) for item in items]
    for future in futures:
        yield future.result(timeout=60)
