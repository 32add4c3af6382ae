import time


def ask(conn, request, timeout):
    """Send `request` on `conn`; return the reply, or raise TimeoutError if none comes within `timeout` s."""
    conn.send(request)
    deadline = time.monotonic() + timeout
    while not conn.poll():  # wrong: asks, naps, asks again; the core is idle, the reply is noticed late
        if time.monotonic() > deadline:
            raise TimeoutError(f"no reply to {request!r} within {timeout} s")
        time.sleep(0.05)
    return conn.recv()
