def stop_worker(worker, stop, timeout):
    stop.set()
    worker.join()
    return worker.exitcode
