"""`python -m tollgate` runs the operator."""

import sys

from tollgate.runtime.main import main

sys.exit(main())
