"""Print pai_lab's OpenAPI document, the one GET /pai-lab/api/v1/openapi.json answers.

`jlpm api:generate` feeds it to openapi-typescript to write src/api.generated.ts, and the test suite
regenerates that file the same way to check it did not drift from the server.
"""

import json
import sys

from pai_lab import __version__
from pai_lab.server import ROUTERS, openapi_document

json.dump(openapi_document(ROUTERS, __version__), sys.stdout, indent=1, sort_keys=True)
sys.stdout.write("\n")
