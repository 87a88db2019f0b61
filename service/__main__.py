"""`python -m service` is `videohooks`."""

import sys

from service.cli import main

sys.exit(main())
