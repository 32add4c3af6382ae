def stop_worker(worker, stop, timeout):
    stop.set()
    worker.join(timeout)
    if worker.is_alive():
        worker.terminate()
        worker.join(1)
    return worker.exitcode
