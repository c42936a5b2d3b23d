import sys

from xmrc.cli import main

sys.exit(main())
