"""Atomically written outputs get the modes a plain open() would give."""

import os

import numpy as np
import pytest

import refusal_jax
from refusal_jax.checkpoints import export
from refusal_jax.models import transformer
from refusal_jax.organisms import assets
from refusal_jax.pipeline import artifacts


@pytest.fixture
def umask_022():
  old = os.umask(0o022)
  yield
  os.umask(old)


def _modes(root):
  found = {}
  for dirpath, dirs, files in os.walk(root):
    for name in dirs + files:
      path = os.path.join(dirpath, name)
      found[os.path.relpath(path, root)] = os.stat(path).st_mode & 0o777
  found['.'] = os.stat(root).st_mode & 0o777
  return found


def test_workdir_files_sae_and_checkpoint_exports_are_world_readable(
    umask_022, tmp_path):
  artifacts.write_json(str(tmp_path / 'run' / 'summary.json'), {'a': 1})
  artifacts.write_text(str(tmp_path / 'run' / 'report.html'), '<html>')
  artifacts.write_npz(str(tmp_path / 'run' / 'x.npz'), x=np.zeros(2))
  refusal_jax.save_sae(refusal_jax.load_sae(assets.sae_path('llama')),
                       tmp_path / 'sae')
  cfg = refusal_jax.ModelConfig.llama(vocab_size=11, d_model=8, num_layers=1,
                                      num_heads=2, num_kv_heads=1, mlp_dim=8)
  export.save_hf_checkpoint(transformer.init_params(cfg), cfg,
                            str(tmp_path / 'ckpt'))
  for folder in ('run', 'sae', 'ckpt'):
    for name, mode in _modes(tmp_path / folder).items():
      is_dir = os.path.isdir(tmp_path / folder / name)
      assert mode == (0o755 if is_dir else 0o644), (folder, name, oct(mode))


def test_a_stricter_umask_is_kept(tmp_path):
  old = os.umask(0o077)
  try:
    artifacts.write_json(str(tmp_path / 'summary.json'), {'a': 1})
  finally:
    os.umask(old)
  assert os.stat(tmp_path / 'summary.json').st_mode & 0o777 == 0o600
