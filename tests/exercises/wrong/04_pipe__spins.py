import time


def ask(conn, request, timeout):
    """Send `request` on `conn`; return the reply, or raise TimeoutError if none comes within `timeout` s."""
    conn.send(request)
    deadline = time.monotonic() + timeout
    while not conn.poll(0):  # asks again and again: a core busy while the server works
        if time.monotonic() > deadline:
            raise TimeoutError(f"no reply to {request!r} within {timeout} s")
    return conn.recv()
