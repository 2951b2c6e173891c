"""Data side of THUMOS14-style detection (tasks/localization/dataset.py): seconds <-> feature rows through the store's
provenance for several stride / offset / fps settings, the fps check, training crops and padding, and on-line
extraction of a video missing from the store (cached, and equal to the tool's features).

Stores are written here with :class:`feature_store.FeatureStore` from clip samples of
:func:`tasks.data.video.sliding_window_sample`, so their metadata is what the extractor would record; annotation files
are written in the ActionFormer and OpenTAD layouts.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from feature_store import FeatureStore, StoreInfo, VideoFeatureMeta
from tasks.localization.dataset import TADFeatureDataset, truncate
from tasks.localization.model import ActionFormerTAD, TADDataPreprocessor
from tasks.data.video import sliding_window_sample


def make_store(path: Path, videos: dict[str, tuple[int, float]], clip_len: int = 16, stride: int = 4,
               mode: str = 'official', dim: int = 4, feats=None) -> Path:
    """A store with one video per entry ``{id: (num_frames, fps)}``; features ``feats(id, meta)`` or random."""
    info = StoreInfo(arch='test', checkpoint_sha256='none', feature_kind='pooled', preprocessing={},
                     dtype='float32', config={'sampling': {'clip_len': clip_len, 'stride': stride, 'mode': mode}})
    rng = np.random.default_rng(0)
    with FeatureStore.create(path, info, overwrite=True) as store:
        for vid, (n, fps) in videos.items():
            sample = sliding_window_sample(n, clip_len=clip_len, stride=stride, mode=mode, fps=fps)
            meta = VideoFeatureMeta.from_clip_sample(vid, sample, stride=stride)
            data = feats(vid, meta) if feats else rng.standard_normal((meta.num_rows, dim))
            store.add(vid, data.astype(np.float32), meta)
    return path


def write_annotations(folder: Path, videos: dict[str, dict], fps_override: dict | None = None) -> tuple[Path, Path]:
    """``videos``: id -> {subset: 'train'|'test', fps, num_frames, segments: [(s, e, label_id)]} as ActionFormer and
    OpenTAD json (class names c0, c1, ...)."""
    af, ot = {}, {}
    for vid, v in videos.items():
        fps = (fps_override or {}).get(vid, v['fps'])
        duration = v['num_frames'] / v['fps']
        af[vid] = {'subset': 'Validation' if v['subset'] == 'train' else 'Test', 'duration': duration, 'fps': fps,
                   'annotations': [{'label': f'c{c}', 'segment': [s, e], 'label_id': c} for s, e, c in v['segments']]}
        ot[vid] = {'subset': 'training' if v['subset'] == 'train' else 'validation', 'duration': duration,
                   'frame': round(duration * fps),
                   'annotations': [{'label': f'c{c}', 'segment': [s, e]} for s, e, c in v['segments']]}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / 'af.json').write_text(json.dumps({'database': af}))
    (folder / 'ot.json').write_text(json.dumps({'database': ot}))
    return folder / 'af.json', folder / 'ot.json'


# ---------------------------------------------------------------------------------------------------------------------
# seconds <-> rows
@pytest.mark.parametrize('fps,clip_len,stride,mode', [
    (30.0, 16, 4, 'official'),    # THUMOS14 V2 features: ActionFormer's defaults
    (25.0, 16, 4, 'official'),    # the ~25 fps THUMOS14 videos
    (29.97, 16, 16, 'official'),  # FineAction-style stride
    (30.0, 16, 8, 'centred'),     # mmaction2 UntrimmedSampleFrames: centres at stride // 2 + k * stride
    (24.0, 8, 2, 'official'),
])
def test_ground_truth_rows_follow_the_store_and_round_trip(tmp_path, fps, clip_len, stride, mode):
    n = 600
    segs = [(2.0, 5.5, 0), (10.25, 14.0, 1)]
    videos = {'vid': {'subset': 'test', 'fps': fps, 'num_frames': n, 'segments': segs}}
    af, ot = write_annotations(tmp_path, videos)
    store = make_store(tmp_path / 's.h5', {'vid': (n, fps)}, clip_len, stride, mode)
    for ann in (af, ot):
        ds = TADFeatureDataset(str(ann), str(store), 'test', test_mode=True)
        item = ds[0]
        rows = item['data_samples']['segments'].double().numpy()
        # independent formulas (docs/thumos14.md#time-and-feature-rows): official windows = ActionFormer's
        # (t fps - clip_len / 2) / stride; centred windows = OpenTAD's (t fps - offset_frames) / stride with offset
        # stride // 2
        offset = clip_len // 2 if mode == 'official' else stride // 2
        expected = (np.array([s[:2] for s in segs]) * fps - offset) / stride
        np.testing.assert_allclose(rows, expected, rtol=0, atol=1e-4)  # float32 rows
        assert item['data_samples']['labels'].tolist() == [0, 1]
        assert item['inputs'].shape == (4, ds.metas['vid'].num_rows)
    # back to seconds with the detector's post-processing (no NMS effect: distinct classes)
    model = ActionFormerTAD(4, 2, embed_dim=8, head_dim=8)
    out = model.postprocess(rows, np.array([0.9, 0.8]), np.array([0, 1]), item['data_samples'])
    order = np.argsort(out['labels'])
    np.testing.assert_allclose(out['segments'][order], [s[:2] for s in segs], atol=1e-5)


def test_fps_mismatch_is_a_clear_error(tmp_path):
    videos = {'vid': {'subset': 'train', 'fps': 30.0, 'num_frames': 300, 'segments': [(1, 2, 0)]}}
    af, ot = write_annotations(tmp_path, videos, fps_override={'vid': 25.0})
    store = make_store(tmp_path / 's.h5', {'vid': (300, 30.0)})
    with pytest.raises(ValueError, match=r"vid: frame rate in .*af\.json \(line \d+: \"fps\" 25\) differs from the "
                                         r"feature store .*s\.h5 \(30\.0000 fps"):
        TADFeatureDataset(str(af), str(store), 'train')
    with pytest.raises(ValueError, match=r'"frame" / "duration" = 250 / 10 = 25\.0000'):
        TADFeatureDataset(str(ot), str(store), 'train')
    # within the tolerance (NTSC 29.97 recorded as 29.97002997...) is fine
    ok_af, _ = write_annotations(tmp_path / 'ok', videos, fps_override={'vid': 30.0 * (1 + 5e-4)})
    assert len(TADFeatureDataset(str(ok_af), str(store), 'train')) == 1


def test_missing_videos_without_online_mode(tmp_path):
    videos = {'a': {'subset': 'train', 'fps': 30.0, 'num_frames': 300, 'segments': []},
              'b': {'subset': 'train', 'fps': 30.0, 'num_frames': 300, 'segments': []}}
    af, _ = write_annotations(tmp_path, videos)
    store = make_store(tmp_path / 's.h5', {'a': (300, 30.0)})
    with pytest.raises(FileNotFoundError, match=r"1 of 2 videos .* not in feature store .*s\.h5: \['b'\].*online="):
        TADFeatureDataset(str(af), str(store), 'train')


# ---------------------------------------------------------------------------------------------------------------------
# crops and padding
def test_truncate_properties():
    segs = np.array([[10., 30.], [100., 130.], [400., 410.]])
    for seed in range(30):
        rng = np.random.default_rng(seed)
        start, length, kept = truncate(500, segs, rng, max_seq_len=128, trunc_thresh=0.5)
        assert length == 128 and 0 <= start <= 500 - 128
        inter = np.clip(np.minimum(start + length, segs[:, 1]) - np.maximum(start, segs[:, 0]), 0, None)
        assert len(kept) >= 1 and set(kept) == set(np.flatnonzero(inter / (segs[:, 1] - segs[:, 0]) >= 0.5))
        # short videos: a window of 90-100 % of the video
        start, length, kept = truncate(100, segs[:1], rng, max_seq_len=128)
        assert 90 <= length <= 100 and start + length <= 100
    a = truncate(500, segs, np.random.default_rng(7), 128)
    b = truncate(500, segs, np.random.default_rng(7), 128)
    assert a[:2] == b[:2]


def test_training_items_are_cropped_windows_of_the_store(tmp_path):
    n, fps = 2000, 30.0  # (2000 - 16) / 4 + 1 = 497 rows
    videos = {'v': {'subset': 'train', 'fps': fps, 'num_frames': n, 'segments': [(5.0, 9.0, 0), (40.0, 50.0, 1)]}}
    af, _ = write_annotations(tmp_path, videos)
    store = make_store(tmp_path / 's.h5', {'v': (n, fps)})
    ds = TADFeatureDataset(str(af), str(store), 'train', max_seq_len=128, seed=3)
    with FeatureStore.open(store) as s:
        full, meta = s.read('v')
    starts = set()
    for epoch in range(6):
        item = ds[(epoch, 0)]
        sample = item['data_samples']
        start, rows = sample['row_offset'], item['inputs'].shape[1]
        starts.add(start)
        assert rows == 128
        np.testing.assert_array_equal(item['inputs'].numpy(), full[start:start + 128].T)
        # kept instances are the originals cut to the window, shifted by its start
        orig = meta.seconds_to_row(np.array([[5.0, 9.0], [40.0, 50.0]]))
        for seg, label in zip(sample['segments'].numpy(), sample['labels'].numpy()):
            np.testing.assert_allclose(seg, np.clip(orig[label], start, start + 128) - start, atol=1e-4)
    assert len(starts) > 1  # every epoch draws a new window
    assert ds[(2, 0)]['data_samples']['row_offset'] == ds[(2, 0)]['data_samples']['row_offset']
    batch = TADDataPreprocessor(max_seq_len=128)({'inputs': [ds[0]['inputs']], 'data_samples': [{}]}, True)
    assert batch['inputs'].shape == (1, 4, 128)
    with pytest.raises(ValueError, match='longer than max_seq_len=64'):
        TADDataPreprocessor(max_seq_len=64)({'inputs': [ds[0]['inputs']], 'data_samples': [{'video_id': 'v'}]},
                                            True)


# ---------------------------------------------------------------------------------------------------------------------
# on-line extraction
@pytest.fixture(scope='module')
def tiny_thumos(tmp_path_factory):
    from tasks.data.synthetic import generate

    root = tmp_path_factory.mktemp('synthetic')
    generate(root, 'tiny', seed=0, workers=1)
    return root / 'thumos'


# on the CPU also where a GPU exists: compared below with features computed here on the CPU
ONLINE = dict(arch='vit_test', random_init=True, size=32, clip_len=4, stride=4, batch_size=8, num_workers=0,
              backend='pyav', seed=1, device='cpu')


def test_online_extraction_caches_missing_videos(tiny_thumos, tmp_path, one_thread):
    from feature_store.extract import extract_video_features, extract_to_store, sample_windows, Preprocess, \
        build_model
    from tasks.localization.dataset import online_extract_config
    from tasks.data.video import VideoReader

    ann = tiny_thumos / 'annotations' / 'thumos14.json'
    videos = tiny_thumos / 'videos'
    store = tmp_path / 'feats.h5'
    online = dict(ONLINE, video_dir=str(videos))
    cfg = online_extract_config(online)
    # the store holds the training video only, extracted by the tool's function with the same settings
    extract_to_store([('video_validation_0000001', videos / 'video_validation_0000001.mp4')], store, cfg,
                     progress=False)
    ds = TADFeatureDataset(str(ann), str(store), 'test', test_mode=True, online=online)
    with FeatureStore.open(store) as s:
        assert s.ids() == ['video_test_0000001', 'video_validation_0000001']
        cached, meta = s.read('video_test_0000001')
    model = build_model('vit_test', img_size=(32, 32), frames=4, seed=1)
    with VideoReader(videos / 'video_test_0000001.mp4', 'pyav') as reader:
        direct = extract_video_features(model, reader, sample_windows(reader, 4, 1, 4),
                                        Preprocess('squash', (32, 32), normalize=False)).numpy()
    np.testing.assert_allclose(cached, direct, atol=1e-5)
    np.testing.assert_allclose(ds[0]['inputs'].numpy(), cached.T)
    assert meta.stride == 4 and meta.clip_len == 4 and meta.offset_frames == 2
    # a second dataset finds it cached (no extraction: an online config with other settings is not even used)
    TADFeatureDataset(str(ann), str(store), 'test', test_mode=True, online=dict(online, seed=99))
    # but extracting a missing video with other settings into this store is refused, naming the difference
    (tmp_path / 'ann2').mkdir()
    other = json.loads(ann.read_text())
    other['database']['video_test_0000009'] = dict(other['database']['video_test_0000001'])
    (videos.parent / 'extra').mkdir(exist_ok=True)
    import shutil
    shutil.copy(videos / 'video_test_0000001.mp4', videos.parent / 'extra' / 'video_test_0000009.mp4')
    (tmp_path / 'ann2' / 'thumos14.json').write_text(json.dumps(other))
    shutil.copy(ann.parent / 'category_idx.txt', tmp_path / 'ann2')  # the tiny file does not use every class
    from feature_store.extract import ExtractError
    with pytest.raises(ExtractError, match='checkpoint_sha256'):
        TADFeatureDataset(str(tmp_path / 'ann2' / 'thumos14.json'), str(store), 'test', test_mode=True,
                          online=dict(online, seed=99, video_dir=str(videos.parent / 'extra')))


def test_online_extraction_needs_weights_or_random_init():
    """Without a checkpoint the features would silently come from a random backbone, as the extraction tool refuses."""
    from tasks.localization.dataset import online_extract_config

    settings = {k: v for k, v in ONLINE.items() if k != 'random_init'}
    with pytest.raises(ValueError, match='random_init=True'):
        online_extract_config(dict(settings, video_dir='videos'))
    with pytest.raises(ValueError, match='got both'):
        online_extract_config(dict(ONLINE, video_dir='videos', checkpoint='ckpt.pth'))
    assert online_extract_config(dict(ONLINE, video_dir='videos')).checkpoint is None
