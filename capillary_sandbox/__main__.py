"""``python -m capillary_sandbox``."""

from capillary_sandbox.cli import main

main()
