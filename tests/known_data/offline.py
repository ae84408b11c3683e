"""Makes a process offline because a test says so, on a connected machine too: the MNIST and Fashion-MNIST
mirrors and TensorFlow Datasets' connection check all point at a port on 127.0.0.1 that refuses connections.

sitecustomize.py does it at the start of a process the tests spawn with VAE_TEST_REFUSING_PORT set; a test that
runs a command in the test process itself (`many_mains`) does it with conftest's `offline_here`.
"""


def refuse_downloads(port):
  """Points every download of this process at 127.0.0.1:`port`; returns a function that undoes it."""
  from vae import data
  from vae.sources import tfds

  probe_host, sources = tfds.PROBE_HOST, dict(data.SOURCES)
  tfds.PROBE_HOST = ('127.0.0.1', port)
  for name, source in sources.items():
    data.SOURCES[name] = source._replace(mirrors=(f'http://127.0.0.1:{port}/',))

  def undo():
    tfds.PROBE_HOST = probe_host
    data.SOURCES.clear()
    data.SOURCES.update(sources)
  return undo
