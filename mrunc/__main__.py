import sys

from mrunc.cli import main

sys.exit(main())
