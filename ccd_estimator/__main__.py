"""``python -m ccd_estimator``: the ``ccd`` command line."""

import sys

from ccd_estimator.cli import main

if __name__ == "__main__":
    sys.exit(main())
