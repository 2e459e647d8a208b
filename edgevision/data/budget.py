"""How much memory decoded images may take: the bound on the training split decoded once and on
the evaluation sets' cache (NumPy/stdlib only, no torch)."""

from __future__ import annotations

import os
from pathlib import Path

from edgevision.progress import log

#: decoded images up to this size (uint8 bytes) are kept in memory, if they also fit in
#: ``AVAILABLE_FRACTION`` of the memory available when they are decoded
MEMORY_LIMIT = 2 << 30
AVAILABLE_FRACTION = 0.5


def decoded_bytes(count: int, channels: int, size: int) -> int:
    """The memory ``count`` images of ``channels x size x size`` take decoded as uint8."""
    return count * channels * size * size


def available_memory() -> int | None:
    """Bytes of memory available now (Linux: ``MemAvailable``; elsewhere the physical memory),
    ``None`` when unknown."""
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_limit() -> int:
    """The most bytes a split's decoded images may take: ``MEMORY_LIMIT``, or less when half
    the available memory is less."""
    available = available_memory()
    if available is None:
        return MEMORY_LIMIT
    return min(MEMORY_LIMIT, int(available * AVAILABLE_FRACTION))


def fits_in_memory(needed: int, images: str, kept: str, fallback: str) -> bool:
    """Whether ``needed`` bytes of decoded ``images`` fit ``memory_limit()``, logged either way:
    ``<kept>: 1.27 GB (uint8; limit 2.15 GB)``, or ``<images> take ... over the ... limit
    (...): <fallback>``."""
    limit = memory_limit()
    if needed > limit:
        rule = f"{MEMORY_LIMIT / 2**30:g} GiB, or {AVAILABLE_FRACTION:.0%} of the available memory"
        log(f"{images} take {gigabytes(needed)} decoded, over the {gigabytes(limit)} limit "
            f"({rule}): {fallback}")
        return False
    log(f"{kept}: {gigabytes(needed)} (uint8; limit {gigabytes(limit)})")
    return True


def gigabytes(size: int) -> str:
    """``size`` bytes as the logs show them (``1.43 GB``)."""
    return f"{size / 1e9:.2f} GB"
