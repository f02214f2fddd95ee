"""The pure train and eval steps (jitted by the Loop).

  train_step(weights, state, opt_state, batch, rng)
      -> StepOutputs(weights, state, opt_state, loss, gradient_norm)

The batch is the data stack: the model pops `model.n_in` values and pushes its
outputs; the loss (or metric) layer then pops its `n_in` values from the top.

Mixed precision (`compute_dtype=jnp.bfloat16`): floating weights and floating
model inputs are cast to bf16 inside the step, so the forward and backward
passes run in bf16, while the master weights, gradients (the cast's vjp casts
them back) and optimizer state stay float32.
"""
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


class StepOutputs(NamedTuple):
  """What a train step returns (a pytree: jit and donation see through it)."""
  weights: Any
  state: Any
  opt_state: Any
  loss: Any
  gradient_norm: Any


def stack_after_model(model, batch, weights, state, rng, compute_dtype=None):
  """Runs the model on the first model.n_in batch entries; returns (stack, new_state)."""
  n = model.n_in
  if len(batch) < n:
    raise ValueError(f'the model takes {n} inputs but batches have only {len(batch)} entries.')
  inputs = tuple(_cast(x, compute_dtype) for x in batch[:n])
  if compute_dtype is not None:
    weights = _cast(weights, compute_dtype)
  outputs, new_state = model.pure_fn(inputs[0] if n == 1 else inputs, weights, state, rng)
  outputs = tuple(outputs) if model.n_out != 1 else (outputs,)
  return outputs + tuple(batch[n:]), new_state


def apply_weightless(layer, stack):
  """Applies a loss or metric layer (no weights, no state) to the top of the stack."""
  n = layer.n_in
  if len(stack) < n:
    raise ValueError(f'{layer.name} takes {n} inputs, but the model outputs and the rest '
                     f'of the batch give only {len(stack)}.')
  value, _ = layer.pure_fn(stack[0] if n == 1 else tuple(stack[:n]), (), (), None)
  return value


def make_train_step(model, loss_layer, optimizer, compute_dtype=None):
  """Returns the (unjitted) pure train step."""

  def loss_fn(weights, state, batch, rng):
    stack, new_state = stack_after_model(model, batch, weights, state, rng, compute_dtype)
    loss = apply_weightless(loss_layer, stack)
    if jnp.ndim(loss) != 0:
      raise ValueError(f'{loss_layer.name} must return a scalar loss, got shape {jnp.shape(loss)}.')
    return loss.astype(jnp.float32), new_state

  def train_step(weights, state, opt_state, batch, rng):
    (loss, new_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        weights, state, batch, rng)
    new_state = _match_dtypes(new_state, state)
    updates, opt_state = optimizer.update(grads, opt_state, weights)
    weights = optax.apply_updates(weights, updates)
    return StepOutputs(weights, new_state, opt_state, loss, optax.tree.norm(grads))

  return train_step


def skip_non_finite(train_step):
  """Wraps a train step so that a bad step changes nothing, then or ever after.

  step(weights, state, opt_state, batch, rng, stopped) -> (StepOutputs, stopped)

  A step is bad when its loss, its gradient norm, or any floating value of the new weights
  or optimizer state is NaN or infinite (a finite loss with a NaN gradient, or an update
  that overflows, is as bad as a NaN loss: none of it may reach a checkpoint).
  `stopped` is a bool scalar; it becomes True at the first bad step, and while it is True
  the step returns its weights, state and optimizer state unchanged. The Loop passes each
  step's flag to the next without waiting for it, so it can check a step after the next
  one has been launched: the arrays it then holds are still those from before the first
  bad step. The checks and selects fuse into the optimizer's update.
  """

  def step(weights, state, opt_state, batch, rng, stopped):
    new = train_step(weights, state, opt_state, batch, rng)
    finite = (jnp.isfinite(new.loss) & jnp.isfinite(new.gradient_norm)
              & all_finite((new.weights, new.opt_state)))
    stopped = stopped | ~finite
    keep = lambda n, o: jnp.where(stopped, o, n)
    kept = [jax.tree_util.tree_map(keep, n, o)
            for n, o in zip((new.weights, new.state, new.opt_state),
                            (weights, state, opt_state))]
    return StepOutputs(*kept, new.loss, new.gradient_norm), stopped

  return step


def all_finite(tree):
  """A bool scalar: whether every floating leaf of `tree` is free of NaN and inf."""
  checks = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)
            if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
  return jnp.all(jnp.stack(checks)) if checks else jnp.bool_(True)


def make_eval_step(model, metric_layers, compute_dtype=None):
  """Returns eval_step(weights, state, batch, rng) -> tuple of metric values (float32)."""

  def eval_step(weights, state, batch, rng):
    stack, _ = stack_after_model(model, batch, weights, state, rng, compute_dtype)
    return tuple(apply_weightless(m, stack).astype(jnp.float32) for m in metric_layers)

  return eval_step


def _cast(tree, dtype):
  if dtype is None:
    return tree
  def cast(x):
    x = jnp.asarray(x)
    return x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x
  return jax.tree_util.tree_map(cast, tree)


def _match_dtypes(new, old):
  """Keeps state dtypes stable across steps (bf16 compute must not change f32 state)."""
  if jax.tree_util.tree_structure(new) != jax.tree_util.tree_structure(old):
    return new
  return jax.tree_util.tree_map(
      lambda n, o: n.astype(o.dtype) if hasattr(o, 'dtype') and hasattr(n, 'astype') else n,
      new, old)
