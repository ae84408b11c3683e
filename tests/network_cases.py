"""Tests that try the network, each in its own way; tests/test_network_guard.py runs them and expects each to
fail. Not collected by the suite itself (the name does not start with test_)."""

import socket
import subprocess
import sys

import pytest


def test_a_caught_lookup():
  with pytest.raises(OSError):
    socket.getaddrinfo('example.com', 443)


def test_a_caught_connection_to_a_public_address():
  with pytest.raises(OSError):
    socket.create_connection(('192.0.2.1', 443), timeout=1)


def test_a_download_in_a_child_process():
  code = ('import urllib.request\n'
          'try:\n  urllib.request.urlopen("https://example.com/", timeout=1)\nexcept OSError:\n  pass\n')
  subprocess.run([sys.executable, '-c', code], check=True, timeout=60)


def test_loopback_is_allowed():
  with socket.socket() as listener:
    listener.bind(('127.0.0.1', 0))
    listener.listen(1)
    socket.create_connection(listener.getsockname(), timeout=5).close()
    socket.getaddrinfo('localhost', 80)
