"""The frozen application's entry point: the same `convdesigner` command as the installed package."""
import sys

from convdesigner.cli import main

if __name__ == "__main__":
    sys.exit(main())
