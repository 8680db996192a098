"""Experiment binaries: `python -m experiments.<name> --config=... --workdir=...`.

Importing this package (which `python -m experiments.<name>` does first)
silences the start-up advice other libraries print on stderr (transformers'
"PyTorch was not found", which only means the runtime does not need torch),
unless the command line asks for more (`--verbosity`/`-v` or `--debug`).
`common.main_wrapper` does the same for other libraries' INFO log lines.
"""

import os
import sys

VERBOSE_FLAGS = ('--verbosity', '-v', '--v=', '--debug')

if not any(arg.startswith(VERBOSE_FLAGS) for arg in sys.argv[1:]):
  os.environ.setdefault('TRANSFORMERS_NO_ADVISORY_WARNINGS', '1')
