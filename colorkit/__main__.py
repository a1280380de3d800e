"""``python -m colorkit``: see colorkit.cli."""
from colorkit.cli import main

raise SystemExit(main())
