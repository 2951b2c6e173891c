"""The peak-memory measurement of ``tools/benchmark.py memory`` against a child whose memory is known: it touches a
200 MiB array, then forks a worker that touches 300 MiB more."""
from __future__ import annotations

import sys

import pytest

from feature_store.bench_memory import measure_peak

pytestmark = pytest.mark.skipif(not sys.platform.startswith('linux'), reason='the measurement reads /proc')

HOG = '''
import multiprocessing, time
import numpy as np


def touch(mib):
    a = np.ones(mib << 20, dtype=np.uint8)  # np.ones writes every page
    time.sleep(0.5)  # long enough to be sampled
    return int(a[::4096].sum())


def main(argv):
    a = touch(int(argv[0]))
    worker = multiprocessing.get_context('fork').Process(target=touch, args=(int(argv[1]),))
    worker.start()
    worker.join()
    return worker.exitcode
'''


def test_peak_of_child_and_worker(tmp_path):
    (tmp_path / 'hog.py').write_text(HOG)
    r = measure_peak(f'{tmp_path / "hog.py"}:main', ['200', '300'], interval=0.02)
    assert 200 <= r['main_mb'] < 200 + 150  # the array plus Python and numpy
    assert len(r['workers_mb']) == 1
    assert 300 <= r['workers_mb'][0] < r['main_mb'] + 300  # a fork starts from its parent's pages
    assert r['peak_mb'] == pytest.approx(r['main_mb'] + r['workers_mb'][0])
    assert 300 <= r['tree_rss_sampled_mb'] <= r['peak_mb']
    assert r['seconds'] >= 1.0  # two half-second sleeps


def test_failure_names_the_target_and_its_error(tmp_path):
    (tmp_path / 'bad.py').write_text('def main(argv):\n    raise ValueError("no such thing: " + argv[0])\n')
    with pytest.raises(RuntimeError, match=r'(?s)bad\.py:main x failed \(exit 1\).*ValueError: no such thing: x'):
        measure_peak(f'{tmp_path / "bad.py"}:main', ['x'])
