"""The network guard of conftest fails any test that tries the network, in the test process or a child."""

import os
import subprocess
import sys

from conftest import REPO_ROOT


def test_every_test_that_tries_the_network_fails_and_loopback_passes():
  result = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-n', '0', '-p', 'no:randomly', '-rA',
                           os.path.join(REPO_ROOT, 'tests', 'network_cases.py')],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
  outcomes = {line.split('::')[-1].split(' ')[0]: line.split(' ')[0] for line in result.stdout.splitlines()
              if '::test_' in line and line.split(' ')[0] in ('PASSED', 'FAILED', 'ERROR')}
  assert outcomes == {'test_a_caught_lookup': 'FAILED', 'test_a_caught_connection_to_a_public_address': 'FAILED',
                      'test_a_download_in_a_child_process': 'FAILED', 'test_loopback_is_allowed': 'PASSED'}, \
      result.stdout[-3000:]
  assert "the test tried the network: pid" in result.stdout and "getaddrinfo('example.com')" in result.stdout
