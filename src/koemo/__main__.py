import sys

from koemo.cli import main

sys.exit(main())
