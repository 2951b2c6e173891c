"""``VideoClsMetric`` (``tasks/classification/metric.py``) on hand-computed fixtures.

* top-1 / top-5 / mean class accuracy of a 5-video, 6-class fixture, with every number derived by hand in comments;
* the same numbers from every data-sample spelling (plain dicts of mmaction2 1.1.0 and 1.2.0, ``ActionDataSample``
  objects, through mmengine's ``Evaluator``) and from the registry under mmaction2's scope;
* the per-video outputs (npz / jsonl scores, results json with per-class accuracy, confusion picture);
* videos that failed to decode (``valid=False``) left out and counted, duplicated and out-of-order results (as a
  multi-process gather can give them) put back in index order; a set with no decoded video is a clear error;
* clear errors for malformed samples.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip('mmengine', reason='VideoClsMetric is an mmengine BaseMetric')

from tasks.classification.metric import VideoClsMetric, plot_confusion  # noqa: E402

# 5 videos, 6 classes. The scores of each video are distinct, so ranks are unambiguous.
SCORES = np.array([
    [0.50, 0.20, 0.10, 0.10, 0.05, 0.05],   # label 0: rank 0               -> top-1 hit
    [0.30, 0.25, 0.20, 0.15, 0.06, 0.04],   # label 3: rank 3 (0, 1, 2 higher) -> top-5 hit only; predicted 0
    [0.01, 0.02, 0.03, 0.04, 0.10, 0.80],   # label 0: rank 5 (last)        -> miss at top-5; predicted 5
    [0.05, 0.60, 0.15, 0.10, 0.06, 0.04],   # label 1: rank 0               -> top-1 hit
    [0.02, 0.70, 0.08, 0.10, 0.05, 0.05],   # label 2: rank 2 (1, 3 higher)  -> top-5 hit; predicted 1
], dtype=np.float32)
LABELS = [0, 3, 0, 1, 2]
# top-1: videos 0 and 3 -> 2/5. top-5: all but video 2 -> 4/5.
# Predictions: 0, 0, 5, 1, 1. Classes in GT or predictions: {0, 1, 2, 3, 5}.
#   recall 0: videos 0, 2 have label 0; video 0 right -> 1/2
#   recall 1: video 3 -> 1/1;  recall 2: video 4 wrong -> 0; recall 3: video 1 wrong -> 0; class 5 (only predicted) -> 0
#   mean over the 5 classes = (0.5 + 1 + 0 + 0 + 0) / 5 = 0.3
EXPECTED = {'acc/top1': 2 / 5, 'acc/top5': 4 / 5, 'acc/mean1': 0.3, 'acc/num_failed': 0}
# Per-class accuracy over GT classes: [1/2, 1, 0, 0, None (no videos), None].
PER_CLASS = [0.5, 1.0, 0.0, 0.0, None, None]
IDS = ['a', 'b', 'c', 'd', 'e']


def evaluate(metric: VideoClsMetric, samples: list) -> dict[str, float]:
    metric.process(None, samples)
    return metric.evaluate(len(samples))


def new_style(i: int) -> dict:  # mmaction2 1.2.0 / our classification model
    return {'pred_score': torch.from_numpy(SCORES[i]), 'gt_label': torch.tensor([LABELS[i]]), 'video_id': IDS[i]}


def test_hand_computed_fixture():
    metrics = evaluate(VideoClsMetric(), [new_style(i) for i in range(5)])
    assert metrics == pytest.approx(EXPECTED)


def test_topk_options_and_prefix():
    metrics = evaluate(VideoClsMetric(topk=(1, 2, 3), prefix='val'), [new_style(i) for i in range(5)])
    # top-2: ranks 0, 3, 5, 0, 2 -> videos 0, 3 -> 2/5; top-3: + video 4 (rank 2) -> 3/5
    assert metrics == pytest.approx({'val/top1': 0.4, 'val/top2': 0.4, 'val/top3': 0.6, 'val/mean1': 0.3,
                                     'val/num_failed': 0})
    with pytest.raises(ValueError, match='topk'):
        VideoClsMetric(topk=(0, 5))


@pytest.mark.parametrize('spelling', ['int', '0d', 'list', 'mmaction2-1.1'])
def test_sample_spellings(spelling):
    samples = []
    for i in range(5):
        if spelling == 'mmaction2-1.1':  # LabelData.to_dict(): {'item': tensor}
            samples.append({'pred_scores': {'item': torch.from_numpy(SCORES[i])},
                            'gt_labels': {'item': torch.tensor([LABELS[i]])}})
        else:
            label = {'int': LABELS[i], '0d': torch.tensor(LABELS[i]), 'list': [LABELS[i]]}[spelling]
            samples.append({'pred_score': SCORES[i].tolist(), 'gt_label': label})
    assert evaluate(VideoClsMetric(), samples) == pytest.approx(EXPECTED)


def test_action_data_samples_through_the_evaluator_and_registry():
    """mmaction2 1.1.0 ActionDataSample objects, as a stock Recognizer3D returns them, through mmengine's Evaluator
    (which calls to_dict) and built from the registry under mmaction2's default scope."""
    mmaction = pytest.importorskip('mmaction')  # noqa: F841
    from mmaction.structures import ActionDataSample
    from mmengine.evaluator import Evaluator
    from mmengine.registry import METRICS
    from mmengine.structures import LabelData

    samples = []
    for i in range(5):
        sample = ActionDataSample(metainfo={'filename': f'/data/val/{IDS[i]}.mp4'})
        sample.gt_labels = LabelData(item=torch.tensor([LABELS[i]]))
        sample.pred_scores = LabelData(item=torch.from_numpy(SCORES[i]))
        samples.append(sample)
    with METRICS.switch_scope_and_registry('mmaction') as registry:
        metric = registry.build(dict(type='VideoClsMetric'))
    assert isinstance(metric, VideoClsMetric)
    evaluator = Evaluator(metric)
    evaluator.process(samples[:2])
    evaluator.process(samples[2:])
    assert evaluator.evaluate(5) == pytest.approx(EXPECTED)
    # Objects passed straight to process() (no to_dict) work too.
    assert evaluate(VideoClsMetric(), samples) == pytest.approx(EXPECTED)


def test_outputs(tmp_path):
    from PIL import Image

    samples = [new_style(i) for i in range(5)]
    samples[4].pop('video_id')
    samples[4]['filename'] = 'videos/e.long.mp4'  # id = name up to the first '.' (tasks.data.video.ids.video_id_of)
    samples[2].pop('video_id')  # no id at all: its position, 2
    metric = VideoClsMetric(out_dir=tmp_path)
    metric.dataset_meta = {'classes': ['c0', 'c1', 'c2', 'c3', 'c4', 'c5']}
    evaluate(metric, samples)

    with np.load(tmp_path / 'cls_scores.npz') as npz:
        assert npz['video_ids'].tolist() == ['a', 'b', '2', 'd', 'e']
        np.testing.assert_array_equal(npz['scores'], SCORES)
        np.testing.assert_array_equal(npz['labels'], LABELS)
        np.testing.assert_array_equal(npz['preds'], [0, 0, 5, 1, 1])
        confusion = np.zeros((6, 6), int)
        for y, p in [(0, 0), (3, 0), (0, 5), (1, 1), (2, 1)]:
            confusion[y, p] += 1
        np.testing.assert_array_equal(npz['confusion'], confusion)

    results = json.loads((tmp_path / 'cls_results.json').read_text())
    assert results['metrics'] == pytest.approx(EXPECTED)
    assert results['num_videos'] == 5 and results['num_classes'] == 6
    assert results['num_failed'] == 0 and results['failed'] == []
    assert [c['accuracy'] for c in results['per_class']] == PER_CLASS
    assert [c['num_videos'] for c in results['per_class']] == [2, 1, 1, 1, 0, 0]
    assert results['per_class'][3]['name'] == 'c3'

    # the picture draws the hand-derived confusion matrix, class names and metrics
    plot_confusion(confusion, tmp_path / 'expected.png', names=[f'c{i}' for i in range(6)],
                   title='top-1 0.400, mean class acc. 0.300, 5 videos')
    with Image.open(tmp_path / 'cls_confusion.png') as image, Image.open(tmp_path / 'expected.png') as reference:
        assert (image.format, image.mode) == ('PNG', 'RGBA') and image.width > image.height  # two panels side by side
        np.testing.assert_array_equal(np.asarray(image), np.asarray(reference))
    (tmp_path / 'expected.png').unlink()
    assert not list(tmp_path.glob('.*tmp*'))  # temporary files renamed away

    jsonl = tmp_path / 'jsonl'
    evaluate(VideoClsMetric(out_dir=jsonl, score_format='jsonl', plot=False), [new_style(i) for i in range(5)])
    lines = [json.loads(line) for line in (jsonl / 'cls_scores.jsonl').read_text().splitlines()]
    assert [line['video_id'] for line in lines] == IDS
    assert [line['pred'] for line in lines] == [0, 0, 5, 1, 1]
    np.testing.assert_allclose([line['scores'] for line in lines], SCORES, rtol=1e-6)
    assert not (jsonl / 'cls_confusion.png').exists()


def test_plot_many_classes(tmp_path):
    """Large K (no tick labels) and a class without videos still render."""
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 5, (120, 120))
    matrix[7] = 0
    plot_confusion(matrix, tmp_path / 'big.png', names=[f'class {i}' for i in range(120)])
    plot_confusion(matrix, tmp_path / 'unnamed.png')
    from PIL import Image
    with Image.open(tmp_path / 'big.png') as image, Image.open(tmp_path / 'unnamed.png') as unnamed:
        assert (image.format, image.mode) == ('PNG', 'RGBA') and image.width > image.height
        # names are drawn only up to 40 classes: beyond, the picture is the one without names
        np.testing.assert_array_equal(np.asarray(image), np.asarray(unnamed))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['big.png', 'unnamed.png']  # no temporary file left


def failed(index: int, video_id: str) -> dict:
    """A video that failed to decode, as the classification model returns it."""
    return {'pred_score': None, 'gt_label': torch.tensor(0), 'video_id': video_id, 'index': index, 'valid': False,
            'failure': (f'/data/{video_id}.mp4', 'file not found')}


def test_failed_duplicated_and_out_of_order_videos(tmp_path):
    """The fixture's 5 videos (indices 0-4) arrive shuffled, video 2 twice (a sampler's padding that survived the
    gather) and with 2 videos that failed to decode (indices 5, 6): the same numbers as the 5 videos in order,
    the failures counted and listed, the scores file in index order."""
    samples = [dict(new_style(i), index=i, valid=True) for i in range(5)]
    shuffled = [samples[3], failed(6, 'g'), samples[2], samples[0], samples[4], failed(5, 'f'), samples[1],
                samples[2]]
    metric = VideoClsMetric(out_dir=tmp_path, plot=False)
    metrics = evaluate(metric, shuffled)
    # counted twice, video 2 (a miss at top-5) would give top-1 2/6 and top-5 4/6
    assert metrics == pytest.approx(dict(EXPECTED, **{'acc/num_failed': 2}))
    with np.load(tmp_path / 'cls_scores.npz') as npz:
        assert npz['video_ids'].tolist() == IDS
        np.testing.assert_array_equal(npz['scores'], SCORES)
    results = json.loads((tmp_path / 'cls_results.json').read_text())
    assert results['num_videos'] == 5 and results['num_failed'] == 2
    assert results['metrics'] == pytest.approx(dict(EXPECTED, **{'acc/num_failed': 2}))
    assert results['failed'] == [{'video_id': 'f', 'index': 5, 'path': '/data/f.mp4', 'reason': 'file not found'},
                                 {'video_id': 'g', 'index': 6, 'path': '/data/g.mp4', 'reason': 'file not found'}]


def test_no_decoded_video_is_an_error_naming_the_failures():
    with pytest.raises(ValueError, match=r'none of the 2 test videos could be decoded.*failed: f \(/data/f\.mp4: '
                                         r'file not found\), g \(/data/g\.mp4: file not found\)'):
        evaluate(VideoClsMetric(), [failed(6, 'g'), failed(5, 'f')])
    with pytest.raises(ValueError, match='no videos were evaluated'):
        VideoClsMetric().compute_metrics([])


@pytest.mark.parametrize('sample, error, match', [
    ({'pred_score': torch.ones(3, 6), 'gt_label': 1, 'video_id': 'v'}, ValueError, r"'v'.*\(3, 6\).*merged"),
    ({'pred_score': torch.ones(6), 'gt_label': torch.tensor([1, 2])}, ValueError, 'single-label'),
    ({'pred_score': torch.tensor([0.1, float('nan')]), 'gt_label': 0}, ValueError, 'non-finite'),
    ({'pred_score': torch.ones(6)}, KeyError, 'gt_label'),
    ({'pred_scores': {'score': torch.ones(6)}, 'gt_label': 0}, ValueError, '"item"'),
    (['not', 'a', 'sample'], TypeError, 'dict or an ActionDataSample'),
])
def test_bad_samples(sample, error, match):
    with pytest.raises(error, match=match):
        VideoClsMetric().process(None, [sample])


def test_bad_result_sets():
    metric = VideoClsMetric()
    metric.process(None, [{'pred_score': torch.ones(6), 'gt_label': 0}, {'pred_score': torch.ones(5), 'gt_label': 0}])
    with pytest.raises(ValueError, match='different numbers of classes'):
        metric.evaluate(2)
    metric = VideoClsMetric()
    metric.process(None, [{'pred_score': torch.ones(6), 'gt_label': 0, 'video_id': 'x'},
                          {'pred_score': torch.ones(6), 'gt_label': 6, 'video_id': 'y'}])
    with pytest.raises(ValueError, match="'y'|y has label 6"):
        metric.evaluate(2)
