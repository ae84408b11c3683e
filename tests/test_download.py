"""The real download code, against an HTTP server on 127.0.0.1 that the test starts (never the internet)."""

import contextlib
import hashlib
import http.server
import os
import re
import socket
import threading

import numpy as np
import pytest

from vae import data
from vae.sources import download, idx
from vae.commands.errors import DownloadError
from conftest import refusing_port, write_mnist


class MirrorHandler(http.server.BaseHTTPRequestHandler):
  """Serves `files` under /good/, and misbehaves in a different way under each other prefix."""
  files = {}

  def do_GET(self):
    prefix, _, name = self.path.strip('/').partition('/')
    body = self.files.get(name)
    if prefix == 'notfound' or body is None:
      self.send_error(404)
    elif prefix == 'broken':
      self.send_error(500)
    elif prefix == 'tampered':
      self._send(body[:-1] + bytes([body[-1] ^ 1]))
    elif prefix == 'cut':  # promises the whole file, sends half, hangs up
      self.send_response(200)
      self.send_header('Content-Length', str(len(body)))
      self.end_headers()
      self.wfile.write(body[:len(body) // 2])
      self.wfile.flush()
      self.connection.shutdown(socket.SHUT_RDWR)
    else:
      self._send(body)

  def _send(self, body):
    self.send_response(200)
    self.send_header('Content-Length', str(len(body)))
    self.end_headers()
    self.wfile.write(body)

  def log_message(self, *args):
    pass


def serve(tmp_path, monkeypatch, dataset):
  """A local mirror holding tiny .gz files of `dataset`, published with their checksums; yields (base_url,
  checksums)."""
  paths = write_mnist(str(tmp_path / f'source-{dataset}'), dataset=dataset)
  files = {os.path.basename(p): open(p, 'rb').read() for p in paths.values()}
  checksums = {name: hashlib.sha256(body).hexdigest() for name, body in files.items()}
  monkeypatch.setitem(data.SOURCES, dataset, data.SOURCES[dataset]._replace(gz_sha256=checksums))
  handler = type('Handler', (MirrorHandler,), {'files': files})
  server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
  # shutdown() waits for the server loop's next poll: a short interval keeps each test's teardown short.
  thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.02}, daemon=True)
  thread.start()
  yield f'http://127.0.0.1:{server.server_address[1]}', checksums
  server.shutdown()
  server.server_close()


@pytest.fixture
def mirror(tmp_path, monkeypatch):
  yield from serve(tmp_path, monkeypatch, 'mnist')


@pytest.fixture
def fashion_mirror(tmp_path, monkeypatch):
  yield from serve(tmp_path, monkeypatch, 'fashion_mnist')


@pytest.fixture
def closed_port_url():
  """closed_port_url() -> the URL of a port on 127.0.0.1 that refuses connections until the test ends."""
  with contextlib.ExitStack() as stack:
    yield lambda: f'http://127.0.0.1:{stack.enter_context(refusing_port())}/'


def leftovers(directory):
  return sorted(n for n in os.listdir(directory) if n.startswith('.') or n.endswith('.part'))


def test_missing_files_are_downloaded_verified_and_loaded(tmp_path, mirror, closed_port_url):
  base, checksums = mirror
  target = str(tmp_path / 'fresh' / 'mnist')  # does not exist yet
  mnist = data.load('mnist', target, mirrors=[base + '/good/'], timeout=5)
  assert mnist.train_images.shape == (256, 784)
  assert sorted(os.listdir(target)) == sorted(n + '.gz' for n in idx.FILE_NAMES)
  # Second time round nothing is fetched: a dead mirror list does not matter.
  again = data.load('mnist', target, mirrors=[closed_port_url()], timeout=5)
  np.testing.assert_array_equal(again.test_labels, mnist.test_labels)


def test_only_missing_files_are_fetched(tmp_path, mirror):
  base, checksums = mirror
  write_mnist(str(tmp_path))
  os.remove(tmp_path / 't10k-labels-idx1-ubyte.gz')
  paths = data.ensure_files(str(tmp_path), [base + '/good/'], checksums, timeout=5)
  assert paths['t10k-labels-idx1-ubyte'].endswith('t10k-labels-idx1-ubyte.gz')
  assert os.path.exists(tmp_path / 't10k-labels-idx1-ubyte.gz')


@pytest.mark.parametrize('bad', ['notfound', 'broken', 'tampered', 'cut', 'dead'])
def test_a_failing_mirror_is_skipped_for_the_next(tmp_path, mirror, bad, closed_port_url):
  base, checksums = mirror
  first = closed_port_url() if bad == 'dead' else f'{base}/{bad}/'
  path = download.download('train-labels-idx1-ubyte.gz', str(tmp_path), mirrors=[first, base + '/good/'],
                       sha256=checksums['train-labels-idx1-ubyte.gz'], timeout=5)
  assert idx.read_idx(path, 'labels').shape == (256,)
  assert leftovers(tmp_path) == []


@pytest.mark.parametrize('bad, reason', [
    ('notfound', r'HTTP 404'), ('broken', r'HTTP 500'), ('tampered', r'checksum mismatch, file discarded'),
    ('cut', r'(connection closed early after|connection failed)')])
def test_each_mirror_failure_is_named_and_no_file_is_kept(tmp_path, mirror, bad, reason):
  base, checksums = mirror
  target = tmp_path / 'mnist'
  target.mkdir()
  with pytest.raises(DownloadError, match=f'could not download train-images-idx3-ubyte.gz: '
                                          f'{base}/{bad}/train-images-idx3-ubyte.gz \\({reason}'):
    download.download('train-images-idx3-ubyte.gz', str(target), mirrors=[f'{base}/{bad}/'],
                  sha256=checksums['train-images-idx3-ubyte.gz'], timeout=5)
  assert os.listdir(target) == []


def test_no_mirror_reachable_gives_one_short_line_with_the_reason_once_and_what_to_do(tmp_path, closed_port_url):
  dead = [closed_port_url(), closed_port_url()]
  target = tmp_path / 'mnist'
  with pytest.raises(DownloadError) as info:
    data.load('mnist', str(target), mirrors=dead, timeout=5)
  names = ', '.join(name + '.gz' for name in idx.FILE_NAMES)
  assert str(info.value) == (f'MNIST could not be downloaded: no mirror could be reached (Connection refused). '
                             f'Put {names} into {target}, or pass --data_dir=DIR pointing at them')
  assert len(str(info.value)) - len(str(target)) <= 300
  assert not os.path.exists(target)  # no partial or temporary file, not even the directory it made


def test_mirrors_that_fail_in_different_ways_each_give_their_reason_once(tmp_path, mirror, closed_port_url):
  base, checksums = mirror
  target = tmp_path / 'mnist'
  with pytest.raises(DownloadError) as info:
    data.load('mnist', str(target), mirrors=[f'{base}/notfound/', f'{base}/tampered/', closed_port_url()],
              timeout=5)
  message = str(info.value)
  host = base.split('//')[1]
  assert message.startswith(f'MNIST could not be downloaded: no mirror delivered it (HTTP 404 from {host}; '
                            f'checksum mismatch, file discarded from {host}; unreachable: Connection refused from ')
  for reason in ('HTTP 404', 'checksum mismatch', 'Connection refused'):
    assert message.count(reason) == 1
  assert '\n' not in message and not os.path.exists(target)


def test_plain_http_is_refused_except_on_loopback(tmp_path):
  with pytest.raises(DownloadError, match=r'http://example.com/x.gz \(refused: only https:// mirrors are used\)'):
    download.download('x.gz', str(tmp_path), mirrors=['http://example.com/'], sha256='0' * 64)


def test_the_default_mirrors_are_https_and_every_file_has_its_own_checksums():
  hex_digest = re.compile(r'^[0-9a-f]{64}$')
  digests = []
  for source in data.SOURCES.values():
    assert all(m.startswith('https://') and m.endswith('/') for m in source.mirrors)
    assert sorted(source.gz_sha256) == sorted(n + '.gz' for n in idx.FILE_NAMES)
    assert sorted(source.fingerprints) == sorted(idx.FILE_NAMES)
    digests += list(source.gz_sha256.values()) + list(source.fingerprints.values())
  assert all(hex_digest.match(d) for d in digests)
  assert len(set(digests)) == len(digests)  # no file's checksum stands in for another's
