"""Text sources: plain text files and Crime and Punishment (shipped with plait, no network).

    text = plait.data.crime_and_punishment()             # the novel without Gutenberg boilerplate
    train, eval_ = plait.data.split_chapters(text)        # disjoint lists of chapters

The novel (public domain, Project Gutenberg #2554, header and footer stripped) ships inside
the package as `crime_and_punishment.txt.xz` (340 KB); a copy at an explicit path, in
$PLAIT_DATA_DIR or in the cache is used first, and `download=True` fetches the full Gutenberg
file into the cache when there is none.
"""
import lzma
import os
import pathlib
import re
import urllib.error
import urllib.request

GUTENBERG_ID = 2554
GUTENBERG_URLS = (
    f'https://www.gutenberg.org/cache/epub/{GUTENBERG_ID}/pg{GUTENBERG_ID}.txt',
    f'https://www.gutenberg.org/files/{GUTENBERG_ID}/{GUTENBERG_ID}-0.txt',
)
FILE_NAME = 'crime_and_punishment.txt'
SHIPPED = pathlib.Path(__file__).resolve().parent / (FILE_NAME + '.xz')


def text_file(path):
  """Reads a UTF-8 text file, with clear errors for a missing, empty or binary file."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f'text_file: {path} does not exist (or is not a file).')
  raw = path.read_bytes()
  return _decode_text(raw, str(path))


def _decode_text(raw, where):
  if not raw.strip():
    raise ValueError(f'text_file: {where} is empty; give a file with some text in it.')
  if b'\x00' in raw[:65536]:
    raise ValueError(f'text_file: {where} looks binary (it contains NUL bytes); give a UTF-8 '
                     'text file.')
  try:
    text = raw.decode('utf-8')
  except UnicodeDecodeError as e:
    raise ValueError(f'text_file: {where} is not UTF-8 text ({e}); convert it to UTF-8.') from e
  return text.lstrip('\ufeff').replace('\r\n', '\n')


def cache_dir():
  """Where downloads are kept: $PLAIT_CACHE_DIR, else $XDG_CACHE_HOME/plait, else ~/.cache/plait."""
  if os.environ.get('PLAIT_CACHE_DIR'):
    return pathlib.Path(os.environ['PLAIT_CACHE_DIR'])
  base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
  return pathlib.Path(base) / 'plait'


_START = re.compile(r'^\*\*\* ?START OF (THIS|THE) PROJECT GUTENBERG.*$', re.M | re.I)
_END = re.compile(r'^\*\*\* ?END OF (THIS|THE) PROJECT GUTENBERG.*$', re.M | re.I)
_END_NOTE = re.compile(r"^\s*End of (the )?Project Gutenberg.*$", re.M | re.I)


def strip_gutenberg(text):
  """Removes the Project Gutenberg header (up to '*** START OF ...') and footer (from '*** END')."""
  start = _START.search(text)
  if start:
    text = text[start.end():]
  end = _END.search(text)
  if end:
    text = text[:end.start()]
  note = None
  for note in _END_NOTE.finditer(text):
    pass
  if note is not None and len(text) - note.start() < 500:
    text = text[:note.start()]
  return text.strip() + '\n'


def find_crime_and_punishment(path=None, download=True):
  """Path of the novel: explicit `path`, $PLAIT_DATA_DIR, the cache dir, else a download.

  Raises:
    FileNotFoundError: an explicit path that does not exist, or no copy found and the download
      failed (e.g. offline); the message says where the file was looked for.
  """
  if path is not None:
    path = pathlib.Path(path)
    if path.is_dir():
      path = path / FILE_NAME
    if not path.is_file():
      raise FileNotFoundError(f'crime_and_punishment: {path} does not exist.')
    return path
  looked = []
  env = os.environ.get('PLAIT_DATA_DIR')
  if env:
    candidate = pathlib.Path(env) / FILE_NAME
    if candidate.is_file():
      return candidate
    looked.append(str(candidate))
  cached = cache_dir() / FILE_NAME
  if cached.is_file():
    return cached
  looked.append(str(cached))
  if not download:
    raise FileNotFoundError(f'crime_and_punishment: not found in {looked} and download=False.')
  return _download(cached, looked)


def _download(target, looked):
  errors = []
  for url in GUTENBERG_URLS:
    try:
      with urllib.request.urlopen(url, timeout=30) as response:
        raw = response.read()
      break
    except (urllib.error.URLError, OSError, ValueError) as e:
      errors.append(f'{url}: {e}')
  else:
    raise FileNotFoundError(
        'crime_and_punishment: no local copy and the download from Project Gutenberg '
        f'(#{GUTENBERG_ID}) failed ({"; ".join(errors)}). Looked in: {looked}. If you are '
        f'offline, put the text at $PLAIT_DATA_DIR/{FILE_NAME} (set PLAIT_DATA_DIR to its '
        'directory) or pass path=... explicitly.')
  target.parent.mkdir(parents=True, exist_ok=True)
  tmp = target.with_suffix('.part')
  tmp.write_bytes(raw)
  tmp.replace(target)  # atomic: a half-written download never looks like a cached copy
  return target


def crime_and_punishment(path=None, download=False):
  """The text of Crime and Punishment, without the Project Gutenberg header and footer.

  From `path` if given (an error if it does not exist), else $PLAIT_DATA_DIR, else plait's
  cache, else the copy shipped with plait (works offline). `download=True` instead fetches
  the Gutenberg file into the cache when no local copy exists (FileNotFoundError offline).
  """
  try:
    found = find_crime_and_punishment(path, download)
  except FileNotFoundError:
    if path is not None or download:
      raise
    return shipped_crime_and_punishment()
  return strip_gutenberg(_decode_text(found.read_bytes(), str(found)))


def shipped_crime_and_punishment():
  """The stripped novel shipped inside the package (decompressed from SHIPPED)."""
  return _decode_text(lzma.decompress(SHIPPED.read_bytes()), str(SHIPPED))


_CHAPTER = re.compile(r'^(CHAPTER [IVXLC]+|[IVXLC]+)\s*$', re.M)


def chapters(text):
  """Splits a novel into chapters at lines 'CHAPTER IV' or a bare roman numeral.

  Text before the first heading (title, 'PART I') is kept at the start of the first chapter, so
  joining the chapters gives back the whole text.
  """
  starts = [m.start() for m in _CHAPTER.finditer(text)]
  if not starts:
    return [text]
  starts[0] = 0
  return [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])]


def split_chapters(text, eval_every=10):
  """(train_chapters, eval_chapters): chapter i goes to eval iff i % eval_every == eval_every-1.

  Chapters are disjoint, so windows from the two splits never overlap.
  """
  parts = chapters(text)
  if len(parts) < 2:
    raise ValueError('split_chapters: found no chapter headings (lines like "CHAPTER IV"); '
                     'cannot make a train/eval split by chapters.')
  eval_every = max(2, min(int(eval_every), len(parts)))
  is_eval = [i % eval_every == eval_every - 1 for i in range(len(parts))]
  train = [c for c, e in zip(parts, is_eval) if not e]
  eval_ = [c for c, e in zip(parts, is_eval) if e]
  return train, eval_
