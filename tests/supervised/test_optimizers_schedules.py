"""Schedules' values at given steps; optimizers against hand-computed updates."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from plait.supervised import optimizers, schedules
from tests.conftest import random_array


@pytest.mark.parametrize('schedule, step, expected', [
    (schedules.constant(3e-4), 17, 3e-4),
    (schedules.warmup(10, 1e-3), 5, 5e-4),
    (schedules.warmup(10, 1e-3), 50, 1e-3),
    (schedules.warmup_and_rsqrt_decay(100, 1e-3), 50, 5e-4),
    (schedules.warmup_and_rsqrt_decay(100, 1e-3), 400, 5e-4),
    (schedules.cosine(1.0, n_steps=100), 50, 0.5),
    (schedules.cosine(1.0, n_steps=110, n_warmup_steps=10, min_value=0.2), 5, 0.5),
    (schedules.cosine(1.0, n_steps=100, min_value=0.2), 100, 0.2),
    (schedules.multifactor(), 400, 0.1 / 20),
    (schedules.multifactor(), 200, 0.1 * 0.5 / 20),
    (schedules.multifactor(), 1600, 0.1 / 40),
    (schedules.multifactor('constant * decay_every', constant=2.0, steps_per_decay=10), 25, 0.5),
    (schedules.multifactor('constant * rsqrt_normalized_decay', constant=1.0, warmup_steps=4),
     16, 0.5),
])
def test_schedule_values(schedule, step, expected):
  assert float(schedule(step)) == pytest.approx(expected, rel=1e-6)
  assert float(jax.jit(schedule)(step)) == pytest.approx(expected, rel=1e-6)


def test_multifactor_unknown_factor_lists_known_ones():
  with pytest.raises(ValueError, match='rsqrt_decayy.*known factors: constant'):
    schedules.multifactor('constant * rsqrt_decayy')


def _params():
  return {'w': jnp.asarray(random_array((3, 4), 1)), 'b': jnp.asarray(random_array((4,), 2))}


def _grads(seed):
  return {'w': jnp.asarray(random_array((3, 4), seed)), 'b': jnp.asarray(random_array((4,), seed + 1))}


def _apply(tx, params, grads_list):
  state = tx.init(params)
  for g in grads_list:
    updates, state = tx.update(g, state, params)
    params = optax.apply_updates(params, updates)
  return params


def test_schedule_is_indexed_from_step_one():
  params, g = _params(), _grads(5)
  out = _apply(optimizers.SGD(learning_rate=lambda step: 0.1 * step), params, [g, g])
  np.testing.assert_allclose(out['w'], params['w'] - 0.1 * g['w'] - 0.2 * g['w'], rtol=1e-6)


def test_sgd_momentum_matches_hand_computation():
  params, g1, g2 = _params(), _grads(5), _grads(7)
  out = _apply(optimizers.SGD(learning_rate=0.1, momentum=0.9), params, [g1, g2])
  trace1 = g1['w']
  trace2 = g2['w'] + 0.9 * trace1
  np.testing.assert_allclose(out['w'], params['w'] - 0.1 * trace1 - 0.1 * trace2, rtol=1e-6)


def test_adam_matches_formula():
  params, g = _params(), _grads(5)
  out = _apply(optimizers.Adam(learning_rate=0.01, eps=1e-8), params, [g])
  # One Adam step: m_hat = g, v_hat = g^2, so the update is -lr * g / (|g| + eps).
  np.testing.assert_allclose(out['b'], params['b'] - 0.01 * g['b'] / (np.abs(g['b']) + 1e-8),
                             rtol=1e-5)


def test_adamw_decays_matrices_not_biases():
  params = _params()
  zero = jax.tree_util.tree_map(jnp.zeros_like, params)
  out = _apply(optimizers.AdamW(learning_rate=0.1, weight_decay=0.5), params, [zero])
  np.testing.assert_allclose(out['w'], params['w'] * (1 - 0.1 * 0.5), rtol=1e-6)
  np.testing.assert_array_equal(out['b'], params['b'])


def test_gradient_clipping_by_global_norm():
  params, g = _params(), _grads(5)
  norm = float(optax.tree.norm(g))
  assert norm > 1.0
  out = _apply(optimizers.SGD(learning_rate=1.0, clip_gradient_norm=1.0), params, [g])
  np.testing.assert_allclose(out['w'], params['w'] - g['w'] / norm, rtol=1e-5)
  unclipped = _apply(optimizers.SGD(learning_rate=1.0, clip_gradient_norm=10 * norm), params, [g])
  np.testing.assert_allclose(unclipped['w'], params['w'] - g['w'], rtol=1e-6)
  with pytest.raises(ValueError, match='clip_gradient_norm must be > 0'):
    optimizers.Adam(clip_gradient_norm=0.0)


def test_adafactor_factors_large_matrices():
  params = {'w': jnp.asarray(random_array((256, 128), 3))}
  tx = optimizers.Adafactor(learning_rate=0.01)
  state = tx.init(params)
  n_state = sum(x.size for x in jax.tree_util.tree_leaves(state))
  assert n_state < 256 + 128 + 64  # rows + columns (+ small counters), not 256 * 128
  out = _apply(tx, params, [{'w': jnp.asarray(random_array((256, 128), 4))}])
  assert not np.allclose(out['w'], params['w']) and np.all(np.isfinite(out['w']))


# The formulas the schedules had before they were built from optax (issue 21), in numpy:
# the optax-built ones must give the same values at every step.
def _reference(name, step, **kw):
  step = np.float64(step)
  if name == 'constant':
    return kw['value']
  if name == 'warmup':
    return kw['max_value'] * min(1.0, step / kw['n_warmup_steps'])
  if name == 'warmup_and_rsqrt_decay':
    n = kw['n_warmup_steps']
    return kw['max_value'] * min(step / n, np.sqrt(n / max(step, 1.0)))
  if name == 'cosine':
    hi, lo, n, w = kw['max_value'], kw.get('min_value', 0.0), kw['n_steps'], kw.get(
        'n_warmup_steps', 0)
    rise = min(1.0, step / max(w, 1)) if w else 1.0
    progress = np.clip((step - w) / (n - w), 0.0, 1.0)
    return rise * (lo + 0.5 * (hi - lo) * (1.0 + np.cos(np.pi * progress)))
  value = 1.0  # multifactor
  w = kw.get('warmup_steps', 400)
  for factor in [f.strip() for f in kw.get('factors', 'constant * linear_warmup * rsqrt_decay')
                 .split('*')]:
    value *= {
        'constant': kw.get('constant', 0.1),
        'linear_warmup': min(1.0, step / w),
        'rsqrt_decay': 1.0 / np.sqrt(max(step, max(w, 1))),
        'rsqrt_normalized_decay': np.sqrt(w) / np.sqrt(max(step, w)),
        'decay_every': kw.get('decay_factor', 0.5) ** np.floor(step / kw.get('steps_per_decay',
                                                                               20_000)),
        'cosine_decay': 0.5 * (1 + np.cos(np.pi * np.mod(step, kw.get('steps_per_cycle', 100_000))
                                          / kw.get('steps_per_cycle', 100_000))),
    }[factor]
  return value


@pytest.mark.parametrize('name, kw', [
    ('constant', dict(value=3e-4)),
    ('warmup', dict(n_warmup_steps=100, max_value=1e-3)),
    ('warmup', dict(n_warmup_steps=1, max_value=0.5)),
    ('warmup_and_rsqrt_decay', dict(n_warmup_steps=100, max_value=1e-3)),
    ('warmup_and_rsqrt_decay', dict(n_warmup_steps=1, max_value=0.01)),
    ('cosine', dict(max_value=1e-3, n_steps=1000)),
    ('cosine', dict(max_value=1.0, n_steps=1100, n_warmup_steps=100, min_value=0.2)),
    ('cosine', dict(max_value=0.0, n_steps=100)),
    ('multifactor', dict()),
    ('multifactor', dict(factors='constant * linear_warmup * rsqrt_normalized_decay',
                         constant=2.0, warmup_steps=50)),
    ('multifactor', dict(factors='constant * decay_every', constant=2.0, steps_per_decay=300,
                         decay_factor=0.7)),
    ('multifactor', dict(factors='constant * linear_warmup * cosine_decay', constant=0.5,
                         warmup_steps=100, steps_per_cycle=700)),
    ('multifactor', dict(factors='rsqrt_decay', warmup_steps=0)),
])
def test_optax_built_schedules_equal_the_former_formulas_at_every_step(name, kw):
  schedule = getattr(schedules, name)(**kw)
  steps = np.arange(1, 3001)
  got = np.asarray(jax.jit(jax.vmap(schedule))(steps))
  want = np.array([_reference(name, s, **kw) for s in steps])
  # float32 rounding, relative to the schedule's peak (1 + cos near the end of a cosine loses
  # digits in any float32 formula, the former one too).
  atol = 1e-6 * np.max(np.abs(want))
  np.testing.assert_allclose(got, want, rtol=2e-6, atol=atol)
  for s in (1, 7, 100, 2999):  # the host's Python call gives the same values
    assert float(schedule(s)) == pytest.approx(want[s - 1], rel=2e-6, abs=atol)


def test_train_task_reports_the_schedule_the_optimizer_follows():
  """The Loop records TrainTask.learning_rate (a jitted host call) for every step."""
  from plait.layers import CrossEntropyLoss  # pylint: disable=import-outside-toplevel
  from plait.supervised.tasks import TrainTask  # pylint: disable=import-outside-toplevel
  schedule = schedules.multifactor('constant * linear_warmup * cosine_decay', constant=0.5,
                                   warmup_steps=10, steps_per_cycle=100)
  task = TrainTask(lambda: iter(()), CrossEntropyLoss(), optimizers.Adam, schedule)
  for step in (1, 5, 10, 11, 57, 100, 250):
    assert task.learning_rate(step) == pytest.approx(float(schedule(step)), rel=1e-6, abs=1e-9)
  assert TrainTask(lambda: iter(()), CrossEntropyLoss(), optax.sgd(0.1)).learning_rate(3) is None
