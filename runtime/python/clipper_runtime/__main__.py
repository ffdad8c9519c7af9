"""Entry point: python3 -m clipper_runtime (configured by CLIPPER_* environment variables)."""

import sys

from .container import main

if __name__ == "__main__":
    sys.exit(main())
