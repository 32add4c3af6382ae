def stop_worker(worker, stop, timeout):
    worker.terminate()
    worker.join(timeout)
    return worker.exitcode
