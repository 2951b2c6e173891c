"""``python -m tasks.data.synthetic --out DIR --preset {tiny,default} --seed S``."""
import sys

from .cli import main

sys.exit(main())
