"""Every config file loads, and the real-model configs ask for their paths."""

import glob
import importlib
import os

import pytest

from refusal_jax import errors
from refusal_jax.pipeline import context

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize('path', sorted(glob.glob(os.path.join(
    REPO, 'configs', '*.py'))))
def test_config_files_load(path):
  name = os.path.basename(path)[:-3]
  if name in ('__init__', 'dissect_base', 'organism_base', 'paper_mode'):
    return
  module = importlib.import_module(f'configs.{name}')
  config = module.get_config()
  assert config.to_dict()


@pytest.mark.parametrize('name', ['gemma2_2b_it', 'llama31_8b_it'])
def test_real_model_configs_need_paths(name):
  config = importlib.import_module(f'configs.{name}').get_config()
  with pytest.raises(errors.ConfigError, match='model_path'):
    context.resolve_paths(config)
