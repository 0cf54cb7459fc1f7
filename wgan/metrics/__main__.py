"""`python -m wgan.metrics ...`: see `wgan.metrics.cli`."""
import sys

from wgan.metrics.cli import main

sys.exit(main())
