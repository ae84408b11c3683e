"""No test may use the network: a guard installed in the test process (conftest) and in every Python process the
tests start (sitecustomize, through PYTHONPATH).

Any name lookup other than localhost's and any connection to an address outside the loopback range is refused
with an OSError, so that nothing leaves the machine, and written to the file named by VAE_TEST_NETWORK_LOG.
conftest reads that file after every test and fails the test that caused an entry, even when the code under test
caught the OSError and carried on as if offline.
"""

import errno
import ipaddress
import os
import socket

LOG_VARIABLE = 'VAE_TEST_NETWORK_LOG'

_getaddrinfo = socket.getaddrinfo
_gethostbyname = socket.gethostbyname
_gethostbyname_ex = socket.gethostbyname_ex
_gethostbyaddr = socket.gethostbyaddr
_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def is_loopback(host):
  """Whether `host` (a name or an address, str or bytes) stands for this machine without a lookup."""
  if host is None:
    return True
  if isinstance(host, bytes):
    host = host.decode('ascii', 'replace')
  if host in ('localhost', 'localhost.', ''):
    return True
  try:
    return ipaddress.ip_address(host.split('%', 1)[0]).is_loopback
  except ValueError:
    return False


def _refuse(what):
  path = os.environ.get(LOG_VARIABLE)
  if path:
    with open(path, 'a') as log:
      log.write(f'pid {os.getpid()}: {what}\n')
  raise OSError(errno.ENETUNREACH, f'the tests allow no network: {what}')


def _guarded_lookup(real, kind):
  def lookup(host, *args, **kwargs):
    if not is_loopback(host):
      _refuse(f'{kind}({host!r})')
    return real(host, *args, **kwargs)
  return lookup


def _guarded_connect(real):
  def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(address[0]):
      _refuse(f'connect to {address!r}')
    return real(self, address)
  return connect


def install():
  socket.getaddrinfo = _guarded_lookup(_getaddrinfo, 'getaddrinfo')
  socket.gethostbyname = _guarded_lookup(_gethostbyname, 'gethostbyname')
  socket.gethostbyname_ex = _guarded_lookup(_gethostbyname_ex, 'gethostbyname_ex')
  socket.gethostbyaddr = _guarded_lookup(_gethostbyaddr, 'gethostbyaddr')
  socket.socket.connect = _guarded_connect(_connect)
  socket.socket.connect_ex = _guarded_connect(_connect_ex)
