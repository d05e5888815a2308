import sys

from pai_lab.serving.gateway.entry import main

sys.exit(main())
