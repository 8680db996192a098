import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault('XLA_PYTHON_CLIENT_PREALLOCATE', 'false')
