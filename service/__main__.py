"""``python -m service`` is ``return-handler``."""

from service.cli import main

main()
