"""The README's Python examples run as written."""
import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / 'README.md'


def test_readme_python_blocks_run(capsys):
  blocks = re.findall(r'```python\n(.*?)```', README.read_text(), flags=re.S)
  assert blocks, 'README has no python example'
  for block in blocks:
    exec(compile(block, str(README), 'exec'), {'__name__': 'readme'})  # pylint: disable=exec-used
  assert 'Serial' in capsys.readouterr().out
