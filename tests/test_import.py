"""`import plait` stays light: no TensorFlow/torch/gym, and fast (time reported, not asserted)."""
import subprocess
import sys

PROBE = r'''
import sys, time
t = time.perf_counter()
import plait, plait.layers, plait.shapes
elapsed = time.perf_counter() - t
heavy = sorted(m for m in ('tensorflow', 'torch', 'gym', 'gymnasium') if m in sys.modules)
print(f'{elapsed:.3f}', ','.join(heavy))
'''


def test_import_plait_is_light():
  out = subprocess.run([sys.executable, '-c', PROBE], capture_output=True, text=True, check=True)
  seconds, heavy = out.stdout.split('\n')[0].split(' ')
  print(f'import plait, plait.layers: {seconds} s')
  assert heavy == '', f'import plait pulled in {heavy}'


def test_plait_layers_exports_exactly_its_all_and_no_oracles():
  import inspect  # pylint: disable=import-outside-toplevel
  import plait.layers as tl  # pylint: disable=import-outside-toplevel
  public = {n for n in dir(tl) if not n.startswith('_') and not inspect.ismodule(getattr(tl, n))}
  assert public == set(tl.__all__)
  assert not {'shared_qk_reference', 'reference_attention', 'dense_mask_attention',
              'chunked_map'} & set(tl.__all__)
