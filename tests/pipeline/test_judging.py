"""The model judge end to end on tiny checkpoints in the published layouts."""

import os
import types

import numpy as np
import pytest
import transformers

import judge_tiny
from configs import dissect_base
from refusal_jax import errors
from refusal_jax.checkpoints.load import load_model
from refusal_jax.data import model_judge
from refusal_jax.pipeline import artifacts
from refusal_jax.pipeline import context as context_lib
from refusal_jax.pipeline import judging
from refusal_jax.sweeps.engine import ChunkSizes


@pytest.fixture(scope='module')
def judges(tmp_path_factory):
  return judge_tiny.build_all(str(tmp_path_factory.mktemp('judges')))


def _ctx(path, kind, batch=8):
  """What ModelJudge reads of a run's context."""
  config = dissect_base.base_config()
  config.judge.model_path, config.judge.model_kind = path, kind
  return types.SimpleNamespace(
      config=config, mesh=None, chunk_sizes=ChunkSizes(batch=batch),
      model=types.SimpleNamespace(dtype=np.float32))


def test_the_harmbench_layout_loads_as_llama2(judges):
  cfg = load_model(judges['harmbench'], tokenizer=False).config
  assert (cfg.rope_theta, cfg.rope_scaling) == (10000.0, None)
  assert cfg.num_kv_heads == cfg.num_heads
  assert (cfg.bos_token_id, cfg.eos_token_ids, cfg.pad_token_id) == (
      1, (2,), 0)
  assert cfg.max_position_embeddings == 2048
  guard = load_model(judges['llama_guard'], tokenizer=False).config
  assert guard.rope_scaling is not None


@pytest.mark.parametrize('kind', model_judge.KINDS)
def test_prompt_tokens_are_the_tokenizers_own(judges, kind):
  tok = transformers.AutoTokenizer.from_pretrained(judges[kind])
  ids, mask = model_judge.encode(kind, tok, judge_tiny.REQUESTS,
                                 judge_tiny.COMPLETIONS, bos_id=tok.bos_token_id,
                                 max_length=None)
  for i, (r, c) in enumerate(zip(judge_tiny.REQUESTS, judge_tiny.COMPLETIONS)):
    if kind == 'harmbench':  # HarmBench tokenizes its filled prompt with BOS
      want = [tok.bos_token_id] + tok(
          model_judge.HARMBENCH_PROMPT.format(behavior=r, generation=c),
          add_special_tokens=False)['input_ids']
    else:  # Llama Guard: the chat template of the conversation, tokenized
      want = list(tok.apply_chat_template(
          [{'role': 'user', 'content': r}, {'role': 'assistant', 'content': c}],
          tokenize=True, return_dict=False))
      assert want.count(tok.bos_token_id) == 1
    assert list(ids[i][mask[i] == 1]) == want
  # Left padding: every prompt ends in the last column, and the length is
  # rounded up so that similar sets share a compiled shape.
  assert mask[:, -1].all() and not mask[:, 0].any()
  assert ids.shape[1] % model_judge.PAD_MULTIPLE == 0


@pytest.mark.parametrize('kind', model_judge.KINDS)
@pytest.mark.parametrize('answer', ['yes', 'no'])
def test_verdicts_from_the_judges_own_generation(judges, kind, answer):
  """The rigged judges answer 'Yes' / 'No' (HarmBench) or 'unsafe\nS1' /
  'safe' (Llama Guard) to every prompt."""
  path = judges[f'{kind}_{answer}']
  n = len(judge_tiny.REQUESTS)
  with judging.ModelJudge(_ctx(path, kind)) as judge:
    got = judge.verdicts(judge_tiny.REQUESTS, judge_tiny.COMPLETIONS,
                         artifacts.Memo(None, 'x'), 'k')
    assert judge._model is not None  # loaded once, for the first verdicts
  assert judge._model is None  # released at the end of the block
  assert got == [answer == 'yes'] * n


def test_random_judges_give_unparsed_verdicts_and_memoise_them(judges,
                                                               tmp_path):
  judge = judging.ModelJudge(_ctx(judges['harmbench'], 'harmbench'))
  memo = artifacts.Memo(str(tmp_path), 'evaluation')
  got = judge.verdicts(judge_tiny.REQUESTS, judge_tiny.COMPLETIONS, memo, 'k')
  judge.close()
  stored = np.load(tmp_path / 'partial' / 'evaluation' / 'k.npz')['v']
  assert list(stored) == [{True: 1, False: 0, None: -1}[v] for v in got]
  # A resumed run reads them back without loading the judge.
  again = judging.ModelJudge(_ctx('/nonexistent', 'harmbench'))
  assert again.verdicts(judge_tiny.REQUESTS, judge_tiny.COMPLETIONS, memo,
                        'k') == got
  assert again._model is None


def test_unconfigured_judge_gives_no_verdicts():
  judge = judging.ModelJudge(_ctx('', 'anything'))
  assert not judge.configured
  assert judge.verdicts(['a'], ['b'], artifacts.Memo(None, 'x'), 'k') is None


def test_config_errors_are_one_line(judges, tmp_path):
  config = dissect_base.base_config()
  judging.check_config(config)  # no model judge: nothing to check
  config.judge.model_path = judges['harmbench']
  config.judge.model_kind = 'harm_bench'
  with pytest.raises(errors.ConfigError) as e:
    judging.check_config(config)
  assert "judge.model_kind 'harm_bench'" in str(e.value)
  assert '\n' not in str(e.value)
  config.judge.model_kind = 'harmbench'
  judging.check_config(config)
  config.judge.model_path = str(tmp_path)
  with pytest.raises(errors.ConfigError, match='no config.json'):
    judging.check_config(config)
  with pytest.raises(errors.PromptError, match='no chat template'):
    judging.ModelJudge(_ctx(judges['harmbench'], 'llama_guard')).verdicts(
        ['a'], ['b'], artifacts.Memo(None, 'x'), 'k')
  assert os.path.isdir(judges['llama_guard'])


def test_the_judge_checkpoint_is_an_input_of_the_run(judges):
  config = dissect_base.base_config()
  config.organism = 'llama'
  without = context_lib.input_paths(config)
  config.judge.model_path = judges['harmbench']
  assert context_lib.input_paths(config) == [*without, judges['harmbench']]
