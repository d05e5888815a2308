import sys

from pai_lab.cli import main

sys.exit(main())
