import sys

from medapp.cli import main

sys.exit(main())
