def stop_worker(worker, stop, timeout):
    """Stop a running Process: ask first, then terminate, then kill; return its exit code."""
    stop.set()  # ask: a worker that watches the Event finishes its step, cleans up and returns
    worker.join(timeout)
    if worker.is_alive():  # it did not listen: SIGTERM, which a worker can catch or ignore
        worker.terminate()
        worker.join(1)
    if worker.is_alive():  # it ignored SIGTERM: SIGKILL, which no process can catch or ignore
        worker.kill()
        worker.join(1)
    return worker.exitcode
