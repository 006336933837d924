import sys

from .cli import main

if __name__ == "__main__":   # not when a spawned child process (the parallel baseline) imports this module
    sys.exit(main())
