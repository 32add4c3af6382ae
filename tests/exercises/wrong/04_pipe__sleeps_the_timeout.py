import time


def ask(conn, request, timeout):
    """Send `request` on `conn`; return the reply, or raise TimeoutError if none comes within `timeout` s."""
    conn.send(request)
    time.sleep(timeout)  # gives the server all the time it may take, then looks once
    if not conn.poll():
        raise TimeoutError(f"no reply to {request!r} within {timeout} s")
    return conn.recv()
