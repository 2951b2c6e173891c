"""The shipped class names (tasks/data/labels): counts, order and names checked against sources independent of the
copies shipped (docs/labels.md): torchvision's Kinetics-400 list, the Something-Something V2 ids a third
project reads from the official labels.json, and Kinetics-710's own structure (K400 first, in K400 order).
"""
from __future__ import annotations

import json

import pytest

from tasks.data.labels import LABEL_SETS, class_names

COUNTS = {'k400': 400, 'k700': 700, 'k710': 710, 'ssv2': 174}

# Kinetics-700 renamed 13 of the Kinetics-400 classes (K400 name -> K700 name); Kinetics-710 (VideoMAE V2 /
# UniFormerV2) starts with the 400 K400 classes in K400 order, under their K700 names.
K700_RENAMES = {
    'balloon blowing': 'inflating balloons', 'changing wheel': 'changing wheel (not on bike)',
    'cooking sausages': 'cooking sausages (not on barbeque)', 'drinking': 'sipping cup', 'dying hair': 'dyeing hair',
    'garbage collecting': 'person collecting garbage', 'hugging': 'hugging (not baby)', 'making bed': 'making the bed',
    'opening bottle': 'opening bottle (not wine)', 'picking fruit': 'picking apples',
    'skiing (not slalom or crosscountry)': 'skiing mono', 'sniffing': 'smelling feet', 'tying tie': 'tying necktie',
}


@pytest.mark.parametrize('name', sorted(COUNTS))
def test_counts_and_no_duplicates(name):
    names = class_names(name)
    assert len(names) == COUNTS[name] and len(set(names)) == len(names)
    assert all(n == n.strip() and n for n in names)


def test_aliases():
    assert class_names('Kinetics400') == class_names('kinetics-400') == class_names('k400')
    assert class_names('sthv2') == class_names('ssv2')
    assert set(LABEL_SETS) == set(COUNTS)


def test_kinetics400_is_torchvisions_list():
    """torchvision ships the Kinetics-400 names, alphabetical as the official CSVs (our file was written from it and
    checked against decord's copy; docs/labels.md)."""
    meta = pytest.importorskip('torchvision.models._meta')
    names = class_names('k400')
    assert names == meta._KINETICS400_CATEGORIES == sorted(names)
    assert (names[0], names[12], names[208], names[399]) == (
        'abseiling', 'balloon blowing', 'passing American football (in game)', 'zumba')


def test_kinetics700_order():
    names = class_names('k700')
    assert names == sorted(names)  # the official CSV order
    assert (names[0], names[1], names[2], names[699]) == ('abseiling', 'acting in play', 'adjusting glasses', 'zumba')
    assert 'throwing ball (not baseball or American football)' in names


def test_kinetics710_starts_with_kinetics400_under_kinetics700_names():
    k400, k700, k710 = class_names('k400'), set(class_names('k700')), class_names('k710')
    assert k710[:400] == [K700_RENAMES.get(n, n) for n in k400]
    assert all(new in k700 and old not in k700 for old, new in K700_RENAMES.items())
    # the rest of K710: K600/K700 classes; K700 keeps only one class out of it (merged into K710's 'throwing ball')
    assert k700 - set(k710) == {'throwing ball (not baseball or American football)'}
    assert (k710[12], k710[400], k710[709]) == ('inflating balloons', 'poaching eggs', 'bull fighting')


def test_ssv2_ids():
    """Positions another project reads from the official something-something-v2-labels.json ({name: id})."""
    names = class_names('ssv2')
    known = {16: 'Holding something', 55: 'Poking something so it slightly moves',
             56: "Poking something so lightly that it doesn't or almost doesn't move",
             100: 'Pushing something so that it slightly moves', 134: 'Something falling like a feather or paper',
             135: 'Something falling like a rock', 139: 'Spinning something so it continues spinning',
             140: 'Spinning something that quickly stops spinning', 151: 'Throwing something',
             155: 'Throwing something onto a surface', 160: 'Touching (without moving) part of something'}
    assert {i: names[i] for i in known} == known
    assert names[0] == 'Approaching something with your camera' and names == sorted(names)


def test_missing_label_set_says_what_to_download(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'k600 class names are not shipped.*label_map_k600\.txt of '
                                                r'OpenGVLab/VideoMAEv2.*pass its path'):
        class_names('kinetics600')
    with pytest.raises(FileNotFoundError, match=r'k900: no such label file, and not a label-set name \(known: k400'):
        class_names('k900')
    # a downloaded file works where the name does not
    (tmp_path / 'label_map_k600.txt').write_text('abseiling\nacting in play\n')
    assert class_names(tmp_path / 'label_map_k600.txt') == ['abseiling', 'acting in play']


def test_label_file_forms(tmp_path):
    expected = ['b', 'a', 'c']
    (tmp_path / 'names.txt').write_text('b\na\r\nc\n\n')
    (tmp_path / 'mm.txt').write_text('b\t0\na\t1\nc\t2\n')  # mmaction2 k710_channel_map lines
    (tmp_path / 'list.json').write_text(json.dumps(expected))
    (tmp_path / 'labels.json').write_text(json.dumps({'a': '1', 'c': '2', 'b': '0'}))  # official SSv2 labels.json
    (tmp_path / 'id2label.json').write_text(json.dumps({'2': 'c', '0': 'b', '1': 'a'}))  # transformers id2label
    for name in ('names.txt', 'mm.txt', 'list.json', 'labels.json', 'id2label.json'):
        assert class_names(tmp_path / name) == expected, name
    assert class_names(str(tmp_path / 'names.txt')) == expected


def test_bad_label_files(tmp_path):
    # text files go through the annotation readers' class-name reader (blank lines skipped, as every list reader)
    (tmp_path / 'blank.txt').write_text('a\n\nb\n')
    assert class_names(tmp_path / 'blank.txt') == ['a', 'b']
    cases = {'dup.txt': ('a\nb\na\n', r"line 3: class 'a' is listed twice \(first on line 1\)"),
             'empty.txt': ('\n', 'lists no class names'),
             'tabs.txt': ('a\t0\nb\t5\n', r'tabs\.txt, line 2: index .5. after the tab, expected 1'),
             'gap.json': (json.dumps({'a': 0, 'b': 2}), r'expected a json list of names'),
             'bad.json': ('{', 'not valid json')}
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=message):
            class_names(tmp_path / name)


def test_names_reach_the_classification_outputs(tmp_path):
    """VideoClsMetric(class_names=...) writes the names into cls_results.json (before, only a dataset's
    metainfo['classes'] could name classes, and no dataset of ours has one)."""
    torch = pytest.importorskip('torch')
    pytest.importorskip('mmengine', reason='VideoClsMetric is an mmengine BaseMetric')
    from tasks.classification.metric import VideoClsMetric

    names = class_names('ssv2')
    scores = torch.zeros(3, 174)
    for video, cls in enumerate((135, 151, 16)):
        scores[video, cls] = 1.0
    samples = [{'pred_score': scores[v], 'gt_label': torch.tensor([c]), 'video_id': f'v{v}'}
               for v, c in enumerate((135, 151, 0))]
    for given in ('ssv2', tmp_path / 'ssv2.txt', names):
        (tmp_path / 'ssv2.txt').write_text('\n'.join(names) + '\n')
        out = tmp_path / f'out_{type(given).__name__}'
        metric = VideoClsMetric(out_dir=out, plot=False, class_names=given)
        metric.process(None, samples)
        assert metric.evaluate(3)['acc/top1'] == pytest.approx(2 / 3)
        per_class = json.loads((out / 'cls_results.json').read_text())['per_class']
        assert [p['name'] for p in per_class] == names
        assert per_class[135] == {'class': 135, 'name': 'Something falling like a rock', 'num_videos': 1,
                                  'accuracy': 1.0}
    with pytest.raises(FileNotFoundError, match='k900: no such label file'):
        VideoClsMetric(class_names='k900')  # at build time, before any video is tested
    metric = VideoClsMetric(out_dir=tmp_path / 'k400', plot=False, class_names='k400')  # 400 names, 174 scores
    metric.process(None, samples)
    metric.evaluate(3)
    assert json.loads((tmp_path / 'k400' / 'cls_results.json').read_text())['per_class'][0]['name'] is None


def test_every_recipe_names_as_many_classes_as_its_head():
    """A recipe's metric names its classes with a label set of its head's size, or not at all (K600, UCF101, HMDB51):
    a K600 recipe inheriting the K400 names would label every class wrongly."""
    from pathlib import Path

    mmengine = pytest.importorskip('mmengine')
    named = {}
    for path in sorted(Path('configs/recognition/videomaev2').glob('*.py')):
        cfg = mmengine.Config.fromfile(str(path))
        classes = cfg.model.backbone.get('num_classes') or 0
        for key in ('val_evaluator', 'test_evaluator'):
            metric = cfg.get(key)
            if isinstance(metric, dict) and metric.get('class_names') is not None:
                assert len(class_names(metric['class_names'])) == classes, (path.name, key)
                named[path.name] = metric['class_names']
    assert {'k400', 'k700', 'k710', 'ssv2'} <= set(named.values())  # the shipped sets are used
