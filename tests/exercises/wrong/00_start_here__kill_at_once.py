def stop_worker(worker, stop, timeout):
    worker.kill()
    worker.join(1)
    return worker.exitcode
