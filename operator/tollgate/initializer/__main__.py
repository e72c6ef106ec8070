import sys

from tollgate.initializer.main import main

sys.exit(main())
