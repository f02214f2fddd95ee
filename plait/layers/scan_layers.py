"""Repeated layers run as one `lax.scan`, so XLA compiles one layer body instead of n.

A Serial of six identical decoder blocks, unrolled, gives XLA six copies of the block to
compile (compile time grows with depth). Here the blocks' weights are stacked on a
leading axis inside the forward pass and one `lax.scan` runs the block over them:

  >>> steps = [block_step(i) for i in range(6)]      # step(carry, args) -> (carry, out)
  >>> carry, outs = scan_steps(steps, x, per_layer_args)   # None if they differ

Steps are compared by their traced programs (jaxprs): the scan runs only when every step
traces to the same program, up to the values of its constants (e.g. BigBird's per-layer
random blocks, which then become scanned inputs). Anything else returns None and the
caller runs its unrolled code, so results never depend on the choice. The weights tree
keeps its per-layer layout; gradients reach the per-layer leaves through the stacking.
"""
import jax
from jax.extend import core as jex_core
import jax.numpy as jnp
import numpy as np

__all__ = ['repeat_plan', 'scan_steps']

_CUSTOM_CALLS = ('custom_vjp_call', 'custom_jvp_call', 'custom_vjp_call_jaxpr',
                 'custom_lin')


def repeat_plan(keys, balanced):
  """Segments of `keys`: ints (run alone) and (start, period, count) repeats.

  A repeat is `count` >= 2 consecutive groups of `period` equal keys; `balanced(start,
  period)` says whether such a group can carry its own outputs to its next copy. The
  longest repeat wins at each position, the shortest period on ties.

    >>> repeat_plan(['a', 'b', 'x', 'y', 'x', 'y', 'c'], lambda s, p: True)
    [0, 1, (2, 2, 2), 6]
  """
  plan, i, n = [], 0, len(keys)
  while i < n:
    best = None
    for period in range(1, (n - i) // 2 + 1):
      count = 1
      while (i + (count + 1) * period <= n and
             keys[i + count * period:i + (count + 1) * period] == keys[i:i + period]):
        count += 1
      if count >= 2 and (best is None or period * count > best[0] * best[1]):
        if balanced(i, period):
          best = (period, count)
    if best is None:
      plan.append(i)
      i += 1
    else:
      plan.append((i, best[0], best[1]))
      i += best[0] * best[1]
  return plan


def _abstract(x):
  aval = jax.typeof(x)
  return jax.ShapeDtypeStruct(aval.shape, aval.dtype, weak_type=aval.weak_type)


def _trace(step, carry, args):
  """(closed jaxpr, in treedef, out shape tree) of step(carry, args) on abstract values."""
  closed, out_shape = jax.make_jaxpr(step, return_shape=True)(
      jax.tree.map(_abstract, carry), jax.tree.map(_abstract, args))
  return closed, jax.tree.structure((carry, args)), out_shape


def _has_float0(tree):
  return any(getattr(x, 'dtype', None) == jax.dtypes.float0 for x in jax.tree.leaves(tree))


def _same_const(a, b):
  if a is b:
    return True
  if isinstance(a, jax.core.Tracer) or isinstance(b, jax.core.Tracer):
    return False
  try:
    a, b = np.asarray(a), np.asarray(b)
  except (TypeError, ValueError):  # E.g. key arrays.
    return False
  return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)


def _contains_custom(jaxpr):
  for eqn in jaxpr.eqns:
    if eqn.primitive.name in _CUSTOM_CALLS:
      return True
    if any(_contains_custom(_open(j)) for j in jex_core.jaxprs_in_params(eqn.params)):
      return True
  return False


def _open(j):
  return j.jaxpr if isinstance(j, jex_core.ClosedJaxpr) else j


def _taints_custom_closure(jaxpr, tainted):
  """Whether values from `tainted` vars reach a custom_vjp/jvp's closed-over constants.

  Those constants live on in the rule's Python closures (fwd/bwd), which the scan
  takes from the first step only: a per-step value there would be silently wrong.
  Values that reach a custom rule as ordinary arguments are fine.
  """
  tainted = set(tainted)
  hit = lambda v: isinstance(v, jex_core.Var) and v in tainted
  for eqn in jaxpr.eqns:
    hits = [hit(v) for v in eqn.invars]
    if not any(hits):
      continue
    subs = [_open(j) for j in jex_core.jaxprs_in_params(eqn.params)]
    if eqn.primitive.name in _CUSTOM_CALLS:
      n_consts = eqn.params.get('num_consts', len(hits))
      if any(hits[:n_consts]):
        return True
    for sub in subs:
      if len(sub.invars) == len(eqn.invars):
        inner = [v for v, h in zip(sub.invars, hits) if h]
        if _taints_custom_closure(sub, inner):
          return True
      elif _contains_custom(sub):
        return True
    tainted.update(eqn.outvars)
  return False


def scan_steps(steps, carry, args, reverse=False):
  """(carry, [out_k]) of `carry, out_k = steps[k](carry, args[k])` for k in order, by one scan.

  `reverse=True` runs k = n-1 .. 0 (outputs still listed by k). Returns None when the
  steps do not all trace to the same program with the same carry in and out (or carry
  float0 values): the caller then runs them unrolled.
  """
  if len(steps) < 2 or _has_float0((carry, args)):
    return None
  traced = [_trace(step, carry, a) for step, a in zip(steps, args)]
  closed, in_tree, out_shape = traced[0]
  carry_shape = jax.tree.map(_abstract, carry)
  if jax.tree.structure(out_shape[0]) != jax.tree.structure(carry_shape):
    return None
  for o, c in zip(jax.tree.leaves(out_shape[0]), jax.tree.leaves(carry_shape)):
    if (o.shape, o.dtype) != (c.shape, c.dtype):
      return None
  text = str(closed.jaxpr)
  for other, other_tree, other_out in traced[1:]:
    if (other_tree != in_tree or
        jax.tree.structure(other_out) != jax.tree.structure(out_shape) or
        len(other.consts) != len(closed.consts) or str(other.jaxpr) != text):
      return None
  consts = [[t[0].consts[c] for t in traced] for c in range(len(closed.consts))]
  varying = [c for c, values in enumerate(consts)
             if not all(_same_const(v, values[0]) for v in values[1:])]
  if varying and _taints_custom_closure(
      closed.jaxpr, [closed.jaxpr.constvars[c] for c in varying]):
    return None
  stacked_args = jax.tree.map(lambda *xs: jnp.stack(xs), *args)
  stacked_consts = [jnp.stack([jnp.asarray(v) for v in consts[c]]) for c in varying]
  fixed = list(closed.consts)
  jaxpr = closed.jaxpr

  def body(c, xs):
    step_args, step_consts = xs
    values = list(fixed)
    for index, value in zip(varying, step_consts):
      values[index] = value
    flat = jax.tree.leaves((c, step_args))
    out = jax.core.eval_jaxpr(jaxpr, values, *flat)
    return jax.tree.unflatten(jax.tree.structure(out_shape), out)

  carry_out, outs = jax.lax.scan(body, carry, (stacked_args, stacked_consts),
                                   length=len(steps), reverse=reverse)
  outs = [jax.tree.map(lambda x, k=k: x[k], outs) for k in range(len(steps))]
  return carry_out, outs
