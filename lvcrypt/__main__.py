import sys

from lvcrypt.cli import main

sys.exit(main())
