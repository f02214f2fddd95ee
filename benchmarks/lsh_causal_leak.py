"""Does causal multi-chunk LSH attention leak future tokens? A tiny CPU experiment.

Why it might: with several chunks, which earlier tokens share position i's chunk depends
on i's slot in the (bucket, position) sort, and every LATER token in a lower bucket shifts
that slot (see plait/layers/attention/lsh.py). Attention weights never reach j > i, but
the SET of earlier tokens seen at i depends on future tokens, so in principle a model can
read a little about the future from it.

Task: i.i.d. uniform random tokens; predict token i + 1 at position i. Without peeking
the best accuracy is chance (1 / vocab). One-layer model: token + position embedding,
one causal shared-QK attention layer (residual), a ReLU MLP and a softmax. Compared:
  dense       LSH with 1 bucket and one chunk = exact causal shared-QK attention (no leak
              possible; the control)
  lsh-train   multi-chunk causal LSH trained as usual (fresh rotations every step),
              evaluated with the fixed eval rotations
  lsh-fixed   the same trained AND evaluated with fixed rotations (mode='eval'): the
              worst case, since the model can then learn where every token hashes
Accuracy is measured on fresh sequences (every batch is new data, so nothing can be
memorized), over all positions but the last. For a truly causal model each prediction is
right with probability exactly 1 / vocab independently of all others (the target is a
fresh uniform token), so the printed sigma is exact: |z| > 3 in the control would be a
bug, while a reproducible z >> 3 for LSH is a leak. Run:

  python benchmarks/lsh_causal_leak.py [--steps 400] [--vocab 2]
"""
import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from plait.layers.attention.lsh import LSHSelfAttention
from plait.shapes import ShapeDtype


def make_model(kind, length, d_model, n_heads, mode):
  if kind == 'dense':
    return LSHSelfAttention(d_model, n_heads=n_heads, n_hashes=1, n_buckets=1,
                            chunk_len=length, causal=True, mode=mode)
  return LSHSelfAttention(d_model, n_heads=n_heads, n_hashes=1, n_buckets=8, chunk_len=4,
                          n_chunks_before=1, causal=True, mode=mode)


def init_params(rng, attention, vocab, length, d_model):
  r = jax.random.split(rng, 5)
  attn_w, attn_s = attention.init(ShapeDtype((1, length, d_model)), rng=r[0])
  scale = 1.0 / np.sqrt(d_model)
  params = dict(embed=jax.random.normal(r[1], (vocab, d_model)) * 0.5,
                pos=jax.random.normal(r[2], (length, d_model)) * 0.5,
                attn=attn_w,
                hidden=jax.random.normal(r[3], (d_model, 4 * d_model)) * scale,
                out=jax.random.normal(r[4], (4 * d_model, vocab)) * scale / 2)
  return params, attn_s


def logits_fn(attention, params, state, tokens, rng):
  x = params['embed'][tokens] + params['pos'][None]
  state = jax.tree_util.tree_map(lambda s: jnp.broadcast_to(s[:1], (tokens.shape[0],) +
                                                            s.shape[1:]), state)
  y, _ = attention.pure_fn(x, params['attn'], state, rng)
  h = jax.nn.relu((x + y) @ params['hidden'])
  return h @ params['out']


def loss_and_acc(logits, tokens):
  """Predict tokens[:, i + 1] at position i."""
  logits, targets = logits[:, :-1], tokens[:, 1:]
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()
  return loss, jnp.mean(jnp.argmax(logits, -1) == targets)


def run(kind, train_mode, args):
  train_attn = make_model(kind, args.length, args.d_model, args.n_heads, train_mode)
  eval_attn = make_model(kind, args.length, args.d_model, args.n_heads, 'eval')
  params, state = init_params(jax.random.key(0), train_attn, args.vocab, args.length,
                              args.d_model)
  opt = optax.adam(args.lr)
  opt_state = opt.init(params)

  @jax.jit
  def step(params, opt_state, tokens, rng):
    def loss(p):
      return loss_and_acc(logits_fn(train_attn, p, state, tokens, rng), tokens)
    (value, acc), grads = jax.value_and_grad(loss, has_aux=True)(params)
    updates, opt_state = opt.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, value, acc

  @jax.jit
  def evaluate(params, tokens):
    return loss_and_acc(logits_fn(eval_attn, params, state, tokens, None), tokens)

  data_rng = np.random.default_rng(1)
  rng = jax.random.key(2)
  for _ in range(args.steps):
    tokens = jnp.asarray(data_rng.integers(0, args.vocab, (args.batch, args.length)))
    rng, sub = jax.random.split(rng)
    params, opt_state, _, train_acc = step(params, opt_state, tokens, sub)
  accs = []
  for _ in range(args.eval_batches):
    tokens = jnp.asarray(data_rng.integers(0, args.vocab, (args.batch, args.length)))
    accs.append(float(evaluate(params, tokens)[1]))
  return float(np.mean(accs)), float(train_acc)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--steps', type=int, default=400)
  parser.add_argument('--vocab', type=int, default=2)
  parser.add_argument('--length', type=int, default=32)
  parser.add_argument('--d_model', type=int, default=32)
  parser.add_argument('--n_heads', type=int, default=2)
  parser.add_argument('--batch', type=int, default=64)
  parser.add_argument('--eval_batches', type=int, default=64)
  parser.add_argument('--lr', type=float, default=3e-3)
  args = parser.parse_args()
  n_eval = args.eval_batches * args.batch * (args.length - 1)
  sigma = np.sqrt((1 / args.vocab) * (1 - 1 / args.vocab) / n_eval)
  print(f'next-token prediction on uniform random tokens: vocab={args.vocab}, '
        f'length={args.length}, steps={args.steps}, batch={args.batch}; chance = '
        f'{1 / args.vocab:.4f}, eval predictions = {n_eval} (1 sigma = {sigma:.4f})')
  print('LSH: n_hashes=1, n_buckets=8, chunk_len=4, n_chunks_before=1 (8 chunks)')
  for kind, mode in [('dense', 'eval'), ('lsh', 'train'), ('lsh', 'eval')]:
    start = time.time()
    acc, train_acc = run(kind, mode, args)
    label = {'dense': 'dense', 'train': 'lsh-train', 'eval': 'lsh-fixed'}[
        kind if kind == 'dense' else mode]
    print(f'{label:10s} eval acc {acc:.4f} ({(acc - 1 / args.vocab) / sigma:+.1f} sigma vs '
          f'chance), last train batch acc {train_acc:.4f}, {time.time() - start:.0f}s')


if __name__ == '__main__':
  main()
