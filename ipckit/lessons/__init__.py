"""What the lessons' children run, and the lessons' demos.

The library (``ipckit.run``, ``ipckit.shm``, ``ipckit.pipeline``...) is built to
be reused; the modules here are built to be read. Each holds the short,
stdlib-only workers one lesson starts in child processes (they must live in an
importable module to reach a child under ``spawn``), the checks of its
exercises, and the demos that must never hang. A lesson shows each worker with
``ipckit.show`` where it uses it. Three modules serve several lessons:
``checking`` (what every exercise check shares), ``workloads`` (the pipeline's
producers and consumers) and ``faults`` (workers that fail on purpose).
"""
