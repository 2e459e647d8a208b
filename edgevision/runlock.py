"""An exclusive, non-blocking OS file lock (``flock``) that dies with its process.

The kernel releases the lock when the holder exits, however it exits (SIGKILL included; child
processes forked while it was held, such as DataLoader workers, share it until they exit too),
so a lock is never stale; the file keeps the last holder's pid only to name it in messages.
Linux and macOS (``fcntl``), edgevision's platforms; where ``fcntl`` is missing (Windows) no
lock is taken.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: runs are not locked there
    fcntl = None  # type: ignore[assignment]


class RunLock:
    """A held lock on one file; ``release`` (or the process's end) frees it."""

    def __init__(self, path: Path, descriptor: int) -> None:
        self.path, self._descriptor = path, descriptor

    @classmethod
    def acquire(cls, path: Path) -> RunLock:
        """Lock ``path`` (created if missing) for this process; ``BlockingIOError`` when another
        process holds it."""
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BaseException:
            os.close(descriptor)
            raise
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        return cls(path, descriptor)

    def release(self) -> None:
        """Unlock and close (idempotent)."""
        if self._descriptor >= 0:
            if fcntl is not None:
                fcntl.flock(self._descriptor, fcntl.LOCK_UN)
            os.close(self._descriptor)
            self._descriptor = -1

    @staticmethod
    def held(path: Path) -> bool:
        """Whether a process (another one, or this one through another ``RunLock``) holds the
        lock on ``path`` now."""
        if fcntl is None or not path.is_file():
            return False
        descriptor = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(descriptor)  # closing drops the probe's own shared lock
        return False

    @staticmethod
    def holder(path: Path) -> str:
        """Who holds (or last held) the lock, as written by ``acquire`` ('' when unknown)."""
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError:
            return ""
