"""``python -m edgevision``."""

from edgevision.cli import main

main()
