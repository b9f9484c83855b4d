"""Stopping a child process the same way everywhere: SIGTERM, a bounded wait, then SIGKILL."""

from __future__ import annotations

import subprocess

__all__ = ["stop_process"]


def stop_process(process: subprocess.Popen, timeout: float) -> int:  # type: ignore[type-arg]
    """SIGTERM ``process`` (a server drains on it), wait up to ``timeout`` s, then SIGKILL and reap it.

    Idempotent: a process that already exited is only reaped. Returns its exit code.
    """
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return int(process.returncode)
