def ask(conn, request, timeout):
    """Send `request` on `conn`; return the reply, or raise TimeoutError if none comes within `timeout` s."""
    conn.send(request)
    if not conn.poll(timeout):  # sleeps until the reply is there, for at most `timeout` s
        raise TimeoutError(f"no reply to {request!r} within {timeout} s")
    return conn.recv()
