import sys

from pynova.cli import main

sys.exit(main())
