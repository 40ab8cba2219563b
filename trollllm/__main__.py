"""`python -m trollllm` runs the CLI."""

import sys

from trollllm.cli import main

sys.exit(main())
