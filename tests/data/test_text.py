"""Text files and Crime and Punishment: lookup order, Gutenberg stripping, chapters, errors."""
import hashlib
import urllib.request

import pytest

import plait.data as pd
from plait.data import text as text_lib

_BOOK = ('The Project Gutenberg EBook of Crime and Punishment\n\nLicense blah\n'
         '*** START OF THIS PROJECT GUTENBERG EBOOK CRIME AND PUNISHMENT ***\n\n'
         'CRIME AND PUNISHMENT\n\nPART I\n\nCHAPTER I\n\nOn an exceptionally hot evening.\n\n'
         'CHAPTER II\n\nHe had not been used to crowds.\n\nEPILOGUE\n\nI\n\nSiberia.\n\n'
         'II\n\nHe was ill a long time.\n\n'
         'End of Project Gutenberg\'s Crime and Punishment, by Fyodor Dostoevsky\n\n'
         '*** END OF THIS PROJECT GUTENBERG EBOOK CRIME AND PUNISHMENT ***\n\nDonations etc.\n')


def _write(directory, content=_BOOK):
  directory.mkdir(parents=True, exist_ok=True)
  (directory / 'crime_and_punishment.txt').write_text(content, encoding='utf-8')
  return directory


def test_strip_gutenberg_removes_header_and_footer():
  text = pd.strip_gutenberg(_BOOK)
  assert text.startswith('CRIME AND PUNISHMENT\n')
  assert text.endswith('He was ill a long time.\n')
  assert 'Gutenberg' not in text and 'Donations' not in text


def test_shared_copy_is_stripped(data_dir):
  text = pd.crime_and_punishment(data_dir / 'crime_and_punishment.txt')
  assert text.startswith('CRIME AND PUNISHMENT')
  assert text.rstrip().endswith('our present story is\nended.')
  assert 'Gutenberg' not in text and len(text) > 1_000_000


def test_lookup_order_explicit_then_env_then_cache(tmp_path, monkeypatch):
  explicit = _write(tmp_path / 'explicit', _BOOK.replace('hot evening', 'EXPLICIT'))
  env = _write(tmp_path / 'env', _BOOK.replace('hot evening', 'ENV'))
  cache = _write(tmp_path / 'cache', _BOOK.replace('hot evening', 'CACHE'))
  monkeypatch.setenv('PLAIT_CACHE_DIR', str(cache))
  monkeypatch.setenv('PLAIT_DATA_DIR', str(env))
  assert 'EXPLICIT' in pd.crime_and_punishment(explicit)
  assert 'ENV' in pd.crime_and_punishment()
  monkeypatch.setenv('PLAIT_DATA_DIR', str(tmp_path / 'nothing-here'))
  assert 'CACHE' in pd.crime_and_punishment()


def test_download_goes_to_the_cache(tmp_path, monkeypatch):
  monkeypatch.delenv('PLAIT_DATA_DIR', raising=False)
  monkeypatch.setenv('PLAIT_CACHE_DIR', str(tmp_path / 'cache'))

  class Response:
    def __enter__(self):
      return self

    def __exit__(self, *args):
      return False

    def read(self):
      return _BOOK.encode('utf-8')

  urls = []
  opener = lambda url, timeout: urls.append(url) or Response()
  monkeypatch.setattr(urllib.request, 'urlopen', opener)
  assert 'hot evening' in pd.crime_and_punishment(download=True)
  assert (tmp_path / 'cache' / 'crime_and_punishment.txt').exists()
  assert '2554' in urls[0]
  pd.crime_and_punishment(download=True)
  pd.crime_and_punishment()
  assert len(urls) == 1  # later calls read the cache


def test_download_reads_a_local_gutenberg_file_through_urllib(tmp_path, monkeypatch):
  # The real download code (no mock of urlopen) on a file:// URL: no network needed.
  monkeypatch.delenv('PLAIT_DATA_DIR', raising=False)
  monkeypatch.setenv('PLAIT_CACHE_DIR', str(tmp_path / 'cache'))
  source = _write(tmp_path / 'mirror') / 'crime_and_punishment.txt'
  monkeypatch.setattr(text_lib, 'GUTENBERG_URLS', (source.as_uri(),))
  text = pd.crime_and_punishment(download=True)
  assert text == pd.strip_gutenberg(_BOOK)
  assert (tmp_path / 'cache' / 'crime_and_punishment.txt').read_text() == _BOOK


def test_without_any_local_copy_the_shipped_novel_is_used_offline(tmp_path, monkeypatch):
  monkeypatch.delenv('PLAIT_DATA_DIR', raising=False)
  monkeypatch.setenv('PLAIT_CACHE_DIR', str(tmp_path / 'empty-cache'))
  def offline(url, timeout):
    raise AssertionError(f'no download by default, got {url}')
  monkeypatch.setattr(urllib.request, 'urlopen', offline)
  text = pd.crime_and_punishment()
  assert text.startswith('CRIME AND PUNISHMENT') and len(text) > 1_000_000
  assert text.rstrip().endswith('our present story is\nended.')
  assert 'Gutenberg' not in text and len(pd.chapters(text)) > 40
  assert not (tmp_path / 'empty-cache').exists()


# SHA-256 of strip_gutenberg(the Gutenberg #2554 file whose own SHA-256 is d7a89d39...c84).
_STRIPPED_SHA256 = '2149185f689ca11928292a671f204705fd075557c95af0f7e6fbd86eb11e2c1c'


def test_shipped_novel_is_the_stripped_gutenberg_text():
  shipped = text_lib.shipped_crime_and_punishment()
  assert hashlib.sha256(shipped.encode('utf-8')).hexdigest() == _STRIPPED_SHA256
  assert len(shipped) == 1_130_532


def test_offline_download_error_mentions_plait_data_dir(tmp_path, monkeypatch):
  monkeypatch.setenv('PLAIT_DATA_DIR', str(tmp_path / 'empty'))
  monkeypatch.setenv('PLAIT_CACHE_DIR', str(tmp_path / 'cache'))

  def offline(url, timeout):
    raise urllib.error.URLError('no network')

  monkeypatch.setattr(urllib.request, 'urlopen', offline)
  with pytest.raises(FileNotFoundError, match='PLAIT_DATA_DIR') as info:
    pd.crime_and_punishment(download=True)
  assert 'no network' in str(info.value) and 'Gutenberg' in str(info.value)


def test_explicit_missing_path_is_an_error(tmp_path):
  with pytest.raises(FileNotFoundError, match='does not exist'):
    pd.crime_and_punishment(tmp_path / 'nope.txt')


def test_chapters_rejoin_and_split_has_no_overlap(data_dir):
  text = pd.crime_and_punishment(data_dir)
  parts = pd.chapters(text)
  assert len(parts) == 41 and ''.join(parts) == text  # 39 chapters + 2 epilogue parts
  train, eval_ = pd.split_chapters(text, eval_every=10)
  assert len(train) + len(eval_) == len(parts) and len(eval_) == 4
  assert not set(train) & set(eval_)
  assert sorted(train + eval_) == sorted(parts)


def test_chapters_of_a_small_book():
  parts = pd.chapters(pd.strip_gutenberg(_BOOK))
  assert [p.split('\n')[0] for p in parts] == ['CRIME AND PUNISHMENT', 'CHAPTER II', 'I', 'II']


@pytest.mark.parametrize('content, match', [(b'', 'empty'), (b'  \n\n', 'empty'),
                                            (b'\x89PNG\r\n\x1a\n\x00\x00\x00', 'binary'),
                                            (b'caf\xe9 latin-1', 'not UTF-8')])
def test_bad_text_files(tmp_path, content, match):
  path = tmp_path / 'bad.txt'
  path.write_bytes(content)
  with pytest.raises(ValueError, match=match):
    pd.text_file(path)


def test_split_without_chapters_is_an_error():
  with pytest.raises(ValueError, match='no chapter headings'):
    pd.split_chapters('just one paragraph\n')


def test_gutenberg_urls_name_the_book():
  assert all('2554' in url for url in text_lib.GUTENBERG_URLS)
