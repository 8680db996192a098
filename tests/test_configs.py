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


@pytest.mark.parametrize('name,default', [
    ('gemma2_2b_it', 'paper'), ('llama31_8b_it', 'paper'),
    ('dissect_organism_gemma2', 'current'),
    ('dissect_organism_llama', 'current'), ('dissect_smollm2', 'current')])
def test_mode_variants(name, default):
  module = importlib.import_module(f'configs.{name}')
  assert module.get_config().mode == default
  for mode in ('paper', 'current'):
    config = module.get_config(mode)
    assert config.mode == mode
    assert bool(config.sae_layers) == (mode == 'paper')
  with pytest.raises(errors.ConfigError, match='config argument'):
    module.get_config('papre')
