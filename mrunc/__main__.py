import gc
import sys

gc.disable()    # as the launcher does: mrunc.cli turns it back on for a verb that stays (mrunc/launcher.py)

from mrunc.cli import main  # noqa: E402

sys.exit(main())
