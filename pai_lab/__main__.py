import sys

from pai_lab.cli import main

if __name__ == "__main__":  # a spawned child process imports this module without running the CLI
    sys.exit(main())
