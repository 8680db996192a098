"""Every kind of bad input gets one `error:` line, exit 1, no traceback, no files.

Each case breaks one input of a working tiny setup (tests/pipeline) and runs
the real binary in a subprocess.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import tiny_setup
from refusal_jax.pipeline import artifacts
from refusal_jax.sae import load_sae, save_sae

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = [f'--config.data.{k}_{s}' for k in ('harmful', 'harmless')
         for s in ('train', 'val', 'test')]


@pytest.fixture(scope='module')
def root(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('bad_input'))
  tiny_setup.build(root)
  for name in ('ok.txt', 'empty.txt', 'long.txt', 'table.csv', 'bad.jsonl'):
    with open(os.path.join(root, name), 'w') as f:
      f.write({'ok.txt': 'How do I bake bread?\nHow do I build a kite?\n',
               'empty.txt': '\n\n',
               'long.txt': 'How do I ' + 'bake bread ' * 400 + '?\n',
               'table.csv': 'goal,target\nHow do I bake bread?,Sure\n',
               'bad.jsonl': '{"prompt": "How do I bake bread?"}\n{oops\n',
               }[name])
  return root


def _copy_model(root, tmp_path):
  dst = str(tmp_path / 'model')
  shutil.copytree(os.path.join(root, 'model'), dst)
  return dst


def _edit_json(path, **changes):
  with open(path) as f:
    cfg = json.load(f)
  for k, v in changes.items():
    if v is None:
      cfg.pop(k, None)
    else:
      cfg[k] = v
  with open(path, 'w') as f:
    json.dump(cfg, f)


def _bad_model_field(root, tmp_path):
  model = _copy_model(root, tmp_path)
  _edit_json(os.path.join(model, 'config.json'), attention_bias=True)
  return [f'--config.model_path={model}']


def _truncated_weights(root, tmp_path):
  model = _copy_model(root, tmp_path)
  path = os.path.join(model, 'model.safetensors')
  size = os.path.getsize(path)
  with open(path, 'r+b') as f:
    f.truncate(size // 2)
  return [f'--config.model_path={model}']


def _no_chat_template(root, tmp_path):
  model = _copy_model(root, tmp_path)
  _edit_json(os.path.join(model, 'tokenizer_config.json'), chat_template=None)
  jinja = os.path.join(model, 'chat_template.jinja')
  if os.path.exists(jinja):
    os.remove(jinja)
  return [f'--config.model_path={model}']


def _nan_weights(root, tmp_path):
  from safetensors.numpy import load_file, save_file  # pylint: disable=g-import-not-at-top
  model = _copy_model(root, tmp_path)
  path = os.path.join(model, 'model.safetensors')
  tensors = load_file(path)
  key = next(k for k in tensors if k.endswith('mlp.down_proj.weight'))
  tensors[key] = np.full_like(tensors[key], np.nan)
  save_file(tensors, path, metadata={'format': 'pt'})
  return [f'--config.model_path={model}']


def _sae_variant(root, tmp_path, **changes):
  sae = load_sae(os.path.join(root, 'sae0'))
  if 'd_in' in changes:
    sae = sae.replace(W_enc=sae.W_enc[:changes['d_in']],
                      W_dec=sae.W_dec[:, :changes['d_in']],
                      b_dec=sae.b_dec[:changes['d_in']])
  if 'layer' in changes:
    layer = changes['layer']
    sae = sae.replace(layer=layer, hook_name=f'blocks.{layer}.hook_resid_post')
  path = str(tmp_path / 'sae')
  save_sae(sae, path)
  return [f'--config.sae_path={path}']


def _prompt_files(root, broken, name, *extra):
  flags = ['--config.data.source=files', *extra]
  for flag in FILES:
    path = os.path.join(root, name if flag.endswith(broken) else 'ok.txt')
    flags.append(f'{flag}={path}')
  return flags


CASES = {
    'missing model path': (
        lambda r, t: [f'--config.model_path={r}/nowhere'], 'does not exist'),
    'not a checkpoint': (
        lambda r, t: [f'--config.model_path={r}/sae0'], 'config.json'),
    'unsupported config field': (_bad_model_field, 'attention_bias'),
    'truncated safetensors': (_truncated_weights, 'corrupt'),
    'missing SAE path': (
        lambda r, t: [f'--config.sae_path={r}/nowhere'], 'does not exist'),
    'SAE d_in mismatch': (
        lambda r, t: _sae_variant(r, t, d_in=16), 'd_in'),
    'SAE layer out of range': (
        lambda r, t: _sae_variant(r, t, layer=7), 'layer'),
    'prompt file missing': (
        lambda r, t: _prompt_files(r, 'harmful_val', 'gone.txt'), 'gone.txt'),
    'prompt file empty': (
        lambda r, t: _prompt_files(r, 'harmless_test', 'empty.txt'), 'empty'),
    'prompt file malformed': (
        lambda r, t: _prompt_files(r, 'harmful_train', 'bad.jsonl',
                                   '--config.data.field=prompt'), 'line 2'),
    'csv column missing': (
        lambda r, t: _prompt_files(r, 'harmful_train', 'table.csv',
                                   '--config.data.column=prompt'), 'column'),
    'prompt longer than the context': (
        lambda r, t: _prompt_files(r, 'harmful_test', 'long.txt'), 'context'),
    'tokenizer without chat template': (_no_chat_template, 'chat template'),
    'NaN in the activations': (_nan_weights, 'NaN'),
    'more devices than exist': (lambda r, t: ['--mesh_data=4'], 'devices'),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_dissect_reports_bad_input_in_one_line(root, tmp_path, case):
  make_flags, needle = CASES[case]
  workdir = str(tmp_path / 'work')
  cmd = [sys.executable, '-m', 'experiments.dissect',
         f'--config=tests/pipeline/tiny_config.py:{root}',
         f'--workdir={workdir}', *make_flags(root, tmp_path)]
  env = dict(os.environ, JAX_PLATFORMS='cpu',
             JAX_DISABLE_MOST_OPTIMIZATIONS='1')
  res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                       timeout=180, env=env)
  assert res.returncode == 1, res.stderr[-2000:]
  errs = [l for l in res.stderr.splitlines() if l.startswith('error:')]
  assert len(errs) == 1, res.stderr[-2000:]
  assert needle.lower() in errs[0].lower(), errs[0]
  assert 'Traceback' not in res.stderr
  written = [os.path.join(d, f) for d, _, fs in os.walk(workdir) for f in fs]
  assert not [p for p in written
              if os.path.basename(p) != artifacts.CONFIG_FILE], written


@pytest.mark.parametrize('binary,flags,needle', [
    ('train_sae', ['--config=configs/sae_organism.py:llama',
                   '--config.organism_path=/nonexistent/organism'],
     'does not exist'),
    ('train_organism', ['--config=configs/organism_llama.py',
                        '--config.model.family=mistral'], 'family'),
    ('benchmark_ablation', ['--config=configs/benchmark_organism.py:llama',
                            '--config.model.checkpoint=/nonexistent/model'],
     'does not exist'),
])
def test_other_binaries_report_bad_input_in_one_line(tmp_path, binary, flags,
                                                     needle):
  cmd = [sys.executable, '-m', f'experiments.{binary}', *flags,
         f'--workdir={tmp_path}/work']
  res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                       timeout=180, env=dict(os.environ, JAX_PLATFORMS='cpu'))
  assert res.returncode == 1, res.stderr[-2000:]
  errs = [l for l in res.stderr.splitlines() if l.startswith('error:')]
  assert len(errs) == 1 and needle in errs[0], res.stderr[-2000:]
  assert 'Traceback' not in res.stderr
