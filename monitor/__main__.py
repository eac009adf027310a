"""`python -m monitor` is the `sla-monitor` command."""

import sys

from monitor.cli import main

sys.exit(main())
