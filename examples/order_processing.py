"""Order processing: the workflow `stent demo` runs, as a program of its own.

    python examples/order_processing.py [--db orders.db]

Interrupt it with Ctrl-C and run it again with the same --db: unfinished orders resume where they stopped.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from stent.cli import demo

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    demo.add_arguments(parser)
    args = parser.parse_args()
    if args.db == "stent-demo.db":
        args.db = os.path.join(tempfile.mkdtemp(prefix="stent-orders-"), "orders.db")
    sys.exit(demo.run(args))
