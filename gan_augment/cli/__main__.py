"""`python -m gan_augment.cli` (and `torchrun -m gan_augment.cli`) runs the `gan-augment` command."""

import sys

from gan_augment.cli import main

sys.exit(main())
