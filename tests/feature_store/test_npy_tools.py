"""npy interoperability from the command line (tools/export_features.py, tools/import_features.py) and a plain
ActionFormer-style npy folder imported without a hand-built StoreInfo (issue 21, friction 7).

Known answers: the ``reference`` store of conftest.py (its rows and time grids), and for a plain folder the official
grid (row r centred on frame clip_len // 2 + r * stride) and the fewest frames that hold the last window.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from feature_store import FeatureStore, StoreInfo, build_store, import_npy
from feature_store.cli import export_main, import_main
from feature_store.meta import VideoFeatureMeta
from tests.feature_store.extract_kit import FRAMES, stores_equal
from tests.torchrun_kit import REPO, cpu_env


def _tool(name: str, *args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / 'tools' / f'{name}.py'), *map(str, args)], env=cpu_env(),
                          capture_output=True, text=True, timeout=120)


def _plain_folder(reference: Path, folder: Path) -> dict[str, np.ndarray]:
    """The reference's rows as bare ``<id>.npy`` files, as the official extractor writes them (no sidecar)."""
    folder.mkdir()
    rows = {}
    with FeatureStore.open(reference) as store:
        for vid in store.ids():
            rows[vid] = store.read(vid)[0]
            np.save(folder / f'{vid}.npy', rows[vid])
    return rows


def test_export_then_import_from_the_command_line_gives_the_same_store(reference, tmp_path):
    npy = tmp_path / 'npy'
    proc = _tool('export_features', reference, npy)
    assert proc.returncode == 0, proc.stderr
    assert f'{npy}: 3 videos as float32 .npy' in proc.stdout
    assert sorted(p.name for p in npy.iterdir()) == ['features_meta.json', *(f'{v}.npy' for v in sorted(FRAMES))]
    back = tmp_path / 'back.h5'
    proc = _tool('import_features', npy, back)
    assert proc.returncode == 0, proc.stderr
    stores_equal(reference, back)  # rows, per-video attributes, provenance
    # an existing OUT is kept unless --overwrite; grid options are refused where the sidecar has the grid
    assert import_main([str(npy), str(back)]) == 1
    assert import_main([str(npy), str(tmp_path / 'x.h5'), '--fps', '25']) == 1
    assert import_main([str(npy), str(tmp_path / 'x.h5'), '--arch', 'vit_giant']) == 1
    assert not (tmp_path / 'x.h5').exists()
    assert import_main([str(npy), str(back), '--overwrite']) == 0
    stores_equal(reference, back)
    # a non-empty OUT_DIR is refused: files of another export would disagree with the new sidecar
    assert export_main([str(reference), str(npy)]) == 1


def test_round_trip_of_ids_with_folders_and_float16(tmp_path):
    rng = np.random.default_rng(0)
    info = StoreInfo(arch='vit_test', checkpoint_sha256='random-init:0', feature_kind='pooled', preprocessing={},
                     dtype='float16', config={'sampling': {'clip_len': 4, 'frame_interval': 1, 'stride': 2}})
    videos = []
    for vid, rows in (('a/x', 5), ('b/deeper/x', 7)):
        meta = VideoFeatureMeta(video_id=vid, fps=25.0, num_frames=2 * rows + 2, duration=(2 * rows + 2) / 25,
                                clip_len=4, frame_interval=1, stride=2, centre_frames=2 + 2 * np.arange(rows))
        videos.append((vid, rng.standard_normal((rows, 8)).astype(np.float16), meta))
    build_store(tmp_path / 'half.h5', info, iter(videos))
    assert export_main([str(tmp_path / 'half.h5'), str(tmp_path / 'npy')]) == 0
    assert (tmp_path / 'npy' / 'b' / 'deeper' / 'x.npy').is_file()
    assert np.load(tmp_path / 'npy' / 'a' / 'x.npy').dtype == np.float32  # what ActionFormer and OpenTAD read
    assert import_main([str(tmp_path / 'npy'), str(tmp_path / 'back.h5')]) == 0
    with FeatureStore.open(tmp_path / 'back.h5') as store:
        assert store.ids() == ['a/x', 'b/deeper/x'] and store.info.dtype == 'float16'
        for vid, rows, meta in videos:
            got, got_meta = store.read(vid)
            np.testing.assert_array_equal(got, rows)  # float16 -> float32 -> float16 is exact
            assert got_meta.to_dict() == meta.to_dict()


def test_plain_npy_folder_with_the_grid_on_the_command_line(reference, tmp_path, capsys):
    bare = tmp_path / 'bare'
    rows = _plain_folder(reference, bare)
    out = tmp_path / 'bare.h5'
    # the grid is not in the files: every missing option is named, and nothing is written
    assert import_main([str(bare), str(out), '--stride', '2']) == 1
    err = capsys.readouterr().err
    assert 'no features_meta.json' in err and '--fps, --clip-len' in err and '--stride' not in err.split('pass ')[1]
    assert not out.exists()
    assert import_main([str(bare), str(out), '--fps', '25', '--stride', '2', '--clip-len', '4']) == 0
    with FeatureStore.open(out) as store, FeatureStore.open(reference) as ref:
        assert store.ids() == ref.ids()
        assert store.info.arch == 'unknown' and store.info.checkpoint_sha256.startswith('unknown:npy:')
        for vid in ref.ids():
            got, meta = store.read(vid)
            ref_meta = ref.meta(vid)
            np.testing.assert_array_equal(got, rows[vid])
            # the official grid: row r centred on frame 2 + 2r; the fewest frames holding the last 4-frame window,
            # which for these videos is their length (their trailing frames are all covered)
            np.testing.assert_array_equal(meta.centre_frames, ref_meta.centre_frames)
            assert (meta.fps, meta.num_frames, meta.clip_len, meta.stride) == (25.0, FRAMES[vid], 4, 2)
            np.testing.assert_allclose(meta.row_to_seconds(np.arange(len(got))),
                                       ref_meta.row_to_seconds(np.arange(len(got))), rtol=0, atol=1e-9)
    # the same folder imported again has the same (unknown) provenance; another folder does not
    assert import_main([str(bare), str(tmp_path / 'again.h5'), '--fps', '25', '--stride', '2', '--clip-len', '4']) == 0
    (bare / 'vid_a.npy').unlink()
    assert import_main([str(bare), str(tmp_path / 'fewer.h5'), '--fps', '25', '--stride', '2', '--clip-len', '4']) == 0
    with FeatureStore.open(out) as a, FeatureStore.open(tmp_path / 'again.h5') as b, \
            FeatureStore.open(tmp_path / 'fewer.h5') as c:
        assert a.info.differences(b.info) == []
        assert [d.field for d in a.info.differences(c.info)] == ['checkpoint_sha256']


def test_plain_npy_folder_from_python_needs_no_store_info(reference, tmp_path):
    bare = tmp_path / 'bare'
    rows = _plain_folder(reference, bare)
    with pytest.raises(ValueError, match=r'no features_meta.json, so the features carry no time grid: pass fps=, '
                                         r'stride='):
        import_npy(bare, tmp_path / 'x.h5', clip_len=4)
    out = import_npy(bare, tmp_path / 'x.h5', fps=25.0, clip_len=4, stride=2, arch='vit_test',
                     checkpoint_sha256='random-init:0')
    with FeatureStore.open(out) as store:
        assert (store.info.arch, store.info.checkpoint_sha256, store.info.dtype) == ('vit_test', 'random-init:0',
                                                                                     'float32')
        np.testing.assert_array_equal(store.read('vid_c')[0], rows['vid_c'])


def test_plain_npy_folder_with_per_video_fps_from_an_actionformer_json(reference, tmp_path):
    bare = tmp_path / 'bare'
    _plain_folder(reference, bare)
    fps = {'vid_a': 25.0, 'vid_b': 30.0, 'vid_c': 29.97}
    database = {vid: {'subset': 'Test', 'duration': FRAMES[vid] / fps[vid], 'fps': fps[vid], 'annotations': []}
                for vid in FRAMES}
    annotations = tmp_path / 'thumos14.json'
    annotations.write_text(json.dumps({'database': database}))
    out = tmp_path / 'th.h5'
    assert import_main([str(bare), str(out), '--annotations', str(annotations), '--stride', '2', '--clip-len', '4',
                        '--arch', 'vit_test', '--preprocessing', 'official-tad']) == 0
    with FeatureStore.open(out) as store:
        for vid in FRAMES:
            meta = store.meta(vid)
            assert (meta.fps, meta.num_frames) == (fps[vid], FRAMES[vid])
            assert meta.row_to_seconds([0])[0] == pytest.approx(2 / fps[vid])
        assert store.info.preprocessing['normalize'] is None and store.info.preprocessing['size'] == [224, 224]
