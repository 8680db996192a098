"""Config file for the tiny test setup: --config=tests/pipeline/tiny_config.py:ROOT."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tiny_setup  # pylint: disable=g-import-not-at-top,wrong-import-position


def get_config(root):
  return tiny_setup.config_for(root)
