"""AVA data and model pieces (tasks/detection/dataset.py, model.py, metric.py) on tiny inputs.

What is checked, and against what:

* RoIAlign geometry: on a feature map whose channels hold each cell's column and row, the RoI features of a box
  that covers whole patches average to the box's centre cell, for patch 16 and for patch 14 (ViT-g), with the
  spatial scale read from the backbone; the wrong stride (16 for a patch-14 model) gives a different, hand-computed
  value, and the full detector path (preprocessor padding, rois from per-clip boxes) finds the same cells;
* the head: only the content under a box matters, and RoIs without labels do not change the loss (mmaction2 rule);
* the preprocessor: ImageNet normalisation and bottom/right zero padding to whole patches;
* the dataset, on lossless videos whose frames encode their own index and show a white box: clip frames centred on
  the keyframe (frame (t - 900) x fps, 8 before, 7 after), training boxes that still frame the white box after random
  rescale / crop / flip, the proposal rules (>= 0.9, else the best one, else the whole frame), excluded keyframes,
  the official "all keyframes" test set, and broken videos (reported; blank clip and no detections at test time);
* malformed annotations are reported with file and line.
"""
from __future__ import annotations

import logging
import pickle

import numpy as np
import pytest
import torch

from backbone import VideoMAEv2ViT
from tasks.data.annotations import AnnotationError
from tasks.detection import (VideoMAEv2AVADataset, VideoMAEv2AVADetector, VideoMAEv2AVAMetric,
                             VideoMAEv2AVAPreprocessor, select_proposals, videomaev2_ava_collate)
from tasks.detection.model import VideoMAEv2RoIHead, boxes_to_rois
from tasks.data.video import write_video

FPS = 30
W, H = 64, 48


def grid_featmap(rows: int, cols: int, frames: int = 2, channels: int = 4) -> torch.Tensor:
    """(1, C, T', rows, cols): channel 0 = column index, channel 1 = row index (the same at every time step)."""
    fm = torch.zeros(1, channels, frames, rows, cols)
    fm[0, 0] = torch.arange(cols, dtype=torch.float32).view(1, 1, cols)
    fm[0, 1] = torch.arange(rows, dtype=torch.float32).view(1, rows, 1)
    return fm


# ----------------------------------------------------------------------------------------------------------------------
# RoIAlign geometry
# ----------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('patch', [16, 14])
def test_roi_features_land_on_the_boxed_patches(patch):
    model = VideoMAEv2AVADetector(backbone=dict(arch='vit_test', patch_size=patch, img_size=patch * 4, all_frames=2),
                                  roi_head=dict(num_classes=3))
    head = model.roi_head
    assert head.spatial_scale == pytest.approx(1 / patch)  # from the backbone, no setting
    fm = grid_featmap(rows=5, cols=7)
    # A box over patch columns 2..4 and rows 1..3 (pixel edges on patch boundaries): its centre cell is (col 3, row 2).
    # With aligned=True, torchvision samples at box * scale - 0.5, where cell k sits at k; on a linear map the mean
    # over the 8x8 bins is the value at the box centre: (2p + 5p) / 2 / p - 0.5 = 3 and (1p + 4p) / 2 / p - 0.5 = 2.
    box = torch.tensor([[0, 2 * patch, 1 * patch, 5 * patch, 4 * patch]], dtype=torch.float32)
    feats = head.roi_features(fm, box)
    assert feats.shape == (1, 4, 8, 8)
    assert feats[0, 0].mean().item() == pytest.approx(3.0, abs=1e-5)
    assert feats[0, 1].mean().item() == pytest.approx(2.0, abs=1e-5)
    # The 8 bins of a row are centred at 2 - 0.5 + (k + 0.5) * 3/8: the spatial max picks the last one, 4.3125, for
    # both patch sizes (the box spans 3 cells either way).
    assert feats[0, 0].amax().item() == pytest.approx(1.5 + 7.5 * 3 / 8, abs=1e-5)


def test_wrong_stride_misaligns_a_patch14_box():
    # What mmaction2's default featmap_stride=16 does to a patch-14 feature map: the same box lands elsewhere.
    fm = grid_featmap(rows=5, cols=7)
    box = torch.tensor([[0, 28.0, 14.0, 70.0, 56.0]])  # patch-14 columns 2..4, rows 1..3
    wrong = VideoMAEv2RoIHead(4, 3, spatial_scale=1 / 16).roi_features(fm, box)
    # centre at (28 + 70) / 2 / 16 - 0.5 = 2.5625 instead of 3
    assert wrong[0, 0].mean().item() == pytest.approx(2.5625, abs=1e-5)


@pytest.mark.parametrize('patch', [16, 14])
def test_detector_path_pads_and_maps_boxes(patch, monkeypatch):
    # Two clips of different sizes in one batch; the preprocessor pads them to whole patches and the boxes of clip 1
    # must read clip 1's map. The backbone is replaced by a map that encodes cell and batch positions.
    model = VideoMAEv2AVADetector(backbone=dict(arch='vit_test', patch_size=patch, img_size=patch * 4, all_frames=2),
                                  roi_head=dict(num_classes=3, dropout=0.0))
    seen = {}

    def fake_featmap(x):
        seen['shape'] = tuple(x.shape)
        b, _, t, h, w = x.shape
        fm = grid_featmap(h // patch, w // patch, frames=t // 2, channels=64).repeat(b, 1, 1, 1, 1)
        fm[:, 2] = torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1)  # channel 2 = batch index
        return fm

    monkeypatch.setattr(model.backbone, 'forward_featmap', fake_featmap)
    clips = [torch.zeros(3, 2, 3 * patch, 5 * patch), torch.zeros(3, 2, 4 * patch + 3, 6 * patch - 5)]
    # cell (col 1, row 1) of clip 0 and cell (col 3, row 2) of clip 1 (interior cells: no border clamping)
    boxes = [torch.tensor([[1.0 * patch, 1.0 * patch, 2.0 * patch, 2.0 * patch]]),
             torch.tensor([[3.0 * patch, 2.0 * patch, 4.0 * patch, 3.0 * patch]])]
    samples = [dict(boxes=b) for b in boxes]
    data = model.data_preprocessor(dict(inputs=clips, data_samples=samples))
    assert seen == {} and data['inputs'].shape == (2, 3, 2, 5 * patch, 6 * patch)  # padded up to whole patches
    feats = model.roi_head.roi_features(model.backbone.forward_featmap(data['inputs']),
                                        boxes_to_rois([s['boxes'] for s in data['data_samples']]))
    assert feats[:, 0].mean(dim=(1, 2)).tolist() == pytest.approx([1.0, 3.0], abs=1e-5)
    assert feats[:, 1].mean(dim=(1, 2)).tolist() == pytest.approx([1.0, 2.0], abs=1e-5)
    assert feats[:, 2].mean(dim=(1, 2)).tolist() == pytest.approx([0.0, 1.0], abs=1e-5)
    assert model(**data, mode='tensor').shape == (2, 3)


def test_roi_head_settings_come_from_the_backbone():
    with pytest.raises(ValueError, match='spatial_scale is taken from the backbone'):
        VideoMAEv2AVADetector(backbone=dict(arch='vit_test', img_size=32, all_frames=2),
                              roi_head=dict(num_classes=3, spatial_scale=1 / 16))
    model = VideoMAEv2AVADetector(backbone=dict(arch='vit_test', img_size=32, all_frames=2),
                                  roi_head=dict(num_classes=3))
    assert model.roi_head.in_channels == 64 and model.data_preprocessor.pad_size_divisor == 16
    assert isinstance(model.backbone.norm, torch.nn.LayerNorm)  # the detection feature-map norm is on


# ----------------------------------------------------------------------------------------------------------------------
# head, loss, preprocessor
# ----------------------------------------------------------------------------------------------------------------------

def test_roi_features_ignore_content_outside_the_box():
    torch.manual_seed(0)
    head = VideoMAEv2RoIHead(8, 3, spatial_scale=1 / 16).eval()
    fm = torch.randn(1, 8, 2, 6, 6)
    box = torch.tensor([[0, 16.0, 16.0, 48.0, 48.0]])  # cells 1..2: bilinear samples read cells 0.5..2.5 at most
    before = head(fm, box)
    fm2 = fm.clone()
    fm2[..., :, 4:] = 100.0  # far right columns
    fm2[..., 4:, :] = -100.0  # bottom rows
    torch.testing.assert_close(head(fm2, box), before)
    fm2[..., 1, 1] += 1.0  # a cell under the box does change it
    assert not torch.allclose(head(fm2, box), before)


def test_loss_uses_labelled_rois_only():
    torch.manual_seed(0)
    model = VideoMAEv2AVADetector(backbone=dict(arch='vit_test', img_size=32, all_frames=2),
                                  roi_head=dict(num_classes=3, dropout=0.0)).eval()
    x = torch.randn(1, 3, 2, 32, 32)
    labelled = dict(boxes=torch.tensor([[0.0, 0.0, 16.0, 32.0]]), labels=torch.tensor([[1.0, 0.0, 1.0]]))
    extra = dict(boxes=torch.tensor([[0.0, 0.0, 16.0, 32.0], [16.0, 0.0, 32.0, 32.0]]),
                 labels=torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]))
    loss = model(x, [labelled], mode='loss')['loss_action_cls']
    logits = model(x, [labelled], mode='tensor')
    # mean element-wise BCE over the 3 classes of the one labelled RoI
    p = torch.sigmoid(logits[0])
    expected = -(torch.log(p[0]) + torch.log(1 - p[1]) + torch.log(p[2])) / 3
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(model(x, [extra], mode='loss')['loss_action_cls'], loss)
    # a batch without any labelled RoI gives a zero loss that still backpropagates
    empty = model(x, [dict(boxes=torch.zeros(0, 4), labels=torch.zeros(0, 3))], mode='loss')['loss_action_cls']
    assert empty.item() == 0.0 and empty.requires_grad


def test_preprocessor_normalises_and_pads():
    pre = VideoMAEv2AVAPreprocessor(pad_size_divisor=16)
    clip = torch.full((3, 2, 20, 30), 255.0)
    out = pre(dict(inputs=[clip], data_samples=[{}]))['inputs']
    assert out.shape == (1, 3, 2, 32, 32)
    expected = (255.0 - torch.tensor([123.675, 116.28, 103.53])) / torch.tensor([58.395, 57.12, 57.375])
    torch.testing.assert_close(out[0, :, 0, 0, 0], expected)
    assert out[..., 20:, :].abs().sum() == 0 and out[..., 30:].abs().sum() == 0


# ----------------------------------------------------------------------------------------------------------------------
# dataset on lossless index videos
# ----------------------------------------------------------------------------------------------------------------------

BOX = (0.25, 0.25, 0.5, 0.75)  # the white rectangle, normalised


def index_frames(n: int) -> np.ndarray:
    """Black frames with a white rectangle at BOX; the top-left 4x4 corner encodes the frame index in R and G."""
    frames = np.zeros((n, H, W, 3), dtype=np.uint8)
    x1, y1, x2, y2 = int(BOX[0] * W), int(BOX[1] * H), int(BOX[2] * W), int(BOX[3] * H)
    frames[:, y1:y2, x1:x2] = 255
    idx = np.arange(n)
    frames[:, :4, :4, 0] = (idx % 256)[:, None, None]
    frames[:, :4, :4, 1] = (idx // 256 * 40)[:, None, None]
    return frames


@pytest.fixture(scope='module')
def ava_dir(tmp_path_factory):
    """Two 6-s lossless videos (keyframes 902..904), annotations with an excluded keyframe, and proposals."""
    root = tmp_path_factory.mktemp('ava')
    (root / 'videos').mkdir()
    for vid in ('vidA', 'vidB'):
        write_video(root / 'videos' / f'{vid}.mp4', index_frames(6 * FPS), FPS, lossless=True)
    box = ','.join(f'{v:.3f}' for v in BOX)
    rows = [f'vidA,0902,{box},1,0', f'vidA,0902,{box},3,0', f'vidA,0903,{box},2,0', f'vidA,0904,{box},1,0',
            f'vidB,0903,{box},3,0']
    (root / 'train.csv').write_text('\n'.join(rows) + '\n')
    (root / 'excluded.csv').write_text('vidA,0904\n')
    (root / 'labels.pbtxt').write_text('item {\n  name: "a"\n  id: 1\n}\nitem {\n  name: "c"\n  id: 3\n}\n')
    props = {
        'vidA,0902': np.array([[0.2, 0.2, 0.5, 0.8, 0.95], [0.0, 0.0, 0.2, 0.2, 0.5], [0.25, 0.25, 0.5, 0.75, 0.92]],
                              dtype=np.float32),
        'vidA,0903': np.array([[0.1, 0.1, 0.3, 0.3, 0.6], [0.3, 0.3, 0.6, 0.6, 0.8]], dtype=np.float32),  # all < 0.9
        'vidA,0904': np.array([[0.1, 0.1, 0.3, 0.3, 0.99]], dtype=np.float32),  # excluded
        'vidB,0904': np.array([[0.1, 0.1, 0.4, 0.4, 0.97]], dtype=np.float32),  # keyframe without annotations
        'vidC,0902': np.array([[0.1, 0.1, 0.4, 0.4, 0.97]], dtype=np.float32),  # a video that is not in the csv
    }
    (root / 'proposals.pkl').write_bytes(pickle.dumps(props))
    return root


def make_dataset(root, **kwargs):
    kwargs.setdefault('exclude_file', str(root / 'excluded.csv'))
    return VideoMAEv2AVADataset(str(root / 'train.csv'), str(root / 'videos'), num_classes=3, clip_len=4,
                                frame_interval=4, backend='pyav', **kwargs)


def frame_index(clip: torch.Tensor) -> list[int]:
    """Frame indices encoded in a (3, T, H, W) clip's corner (no resizing: test_short_side=None)."""
    corner = clip[:, :, 1, 1].round().long()
    return (corner[0] + corner[1] // 40 * 256).tolist()


def test_test_clips_are_centred_on_the_keyframe(ava_dir):
    ds = make_dataset(ava_dir, test_mode=True, test_short_side=None, keyframes='annotated')
    assert [(s.video_id, s.timestamp) for s in ds.samples] == [('vidA', 902), ('vidA', 903), ('vidB', 903)]
    item = ds[1]
    # keyframe 903 -> frame (903 - 900) x 30 = 90; 4 frames every 4th: 2 before, 1 after
    assert frame_index(item['inputs']) == [82, 86, 90, 94]
    assert item['inputs'].shape == (3, 4, H, W)
    s = item['data_samples']
    # no proposal file: the ground-truth boxes, in pixels of the clip and normalised
    np.testing.assert_allclose(s['norm_boxes'].numpy(), [BOX], atol=1e-6)
    np.testing.assert_allclose(s['boxes'].numpy(), [[16, 12, 32, 36]], atol=1e-4)
    assert s['failed'] is None


def test_training_boxes_follow_rescale_crop_and_flip(ava_dir):
    ds = make_dataset(ava_dir, train_scale=(48, 72), crop_size=48, flip_ratio=0.5, min_visible=0.9)
    assert len(ds) == 3  # vidA 902, 903 and vidB 903; the excluded vidA 904 is gone
    labels = {(s.video_id, s.timestamp): s.labels.tolist() for s in ds.samples}
    assert labels[('vidA', 902)] == [[1.0, 0.0, 1.0]]  # actions 1 and 3 merged into one box
    flips = 0
    for epoch in range(6):
        for i in range(len(ds)):
            item = ds[(epoch, i)]
            clip, s = item['inputs'], item['data_samples']
            assert clip.shape == (3, 4, 48, 48)
            assert len(s['boxes']) == 1  # min_visible=0.9: the box was kept only while (almost) whole
            x1, y1, x2, y2 = s['boxes'][0].tolist()
            np.testing.assert_allclose(s['norm_boxes'][0].numpy(), np.array([x1, y1, x2, y2]) / 48, atol=1e-6)
            frame = clip[0, 2]  # red channel of a frame
            inside = frame[int(np.ceil(y1)) + 1:int(y2) - 1, int(np.ceil(x1)) + 1:int(x2) - 1]
            assert inside.numel() > 0 and inside.min() > 200, (epoch, i, s['boxes'])  # white inside the box
            ys, xs = torch.nonzero(frame[6:] > 128, as_tuple=True)  # white pixels (below the index corner)
            # ... and (bilinear edges aside) nothing white outside it
            assert xs.min() >= x1 - 1.5 and xs.max() <= x2 + 0.5
            assert ys.min() + 6 >= y1 - 1.5 and ys.max() + 6 <= y2 + 0.5
            flips += x1 > 48 - x2  # the box starts left of centre unless flipped
    assert 0 < flips < 18
    # the same (epoch, index) gives the same sample, another epoch another one
    torch.testing.assert_close(ds[(2, 1)]['inputs'], ds[(2, 1)]['inputs'])
    assert not torch.equal(ds[(2, 1)]['inputs'], ds[(3, 1)]['inputs'])


def test_test_keyframes_and_proposal_rules(ava_dir):
    ds = make_dataset(ava_dir, test_mode=True, proposal_file=str(ava_dir / 'proposals.pkl'), test_short_side=None)
    # 'all': annotated keyframes plus proposal keyframes of the annotated videos (vidB 904), minus the excluded one,
    # ordered by video then time; vidC is not in the annotations
    keys = [(s.video_id, s.timestamp) for s in ds.samples]
    assert keys == [('vidA', 902), ('vidA', 903), ('vidB', 903), ('vidB', 904)]
    by_key = dict(zip(keys, ds.samples))
    # >= 0.9 kept, in file order
    np.testing.assert_allclose(by_key[('vidA', 902)].scores, [0.95, 0.92])
    # none >= 0.9: the best one (0.8)
    np.testing.assert_allclose(by_key[('vidA', 903)].boxes, [[0.3, 0.3, 0.6, 0.6]])
    # no proposals for the keyframe: the whole frame
    np.testing.assert_allclose(by_key[('vidB', 903)].boxes, [[0, 0, 1, 1]])
    annotated = make_dataset(ava_dir, test_mode=True, proposal_file=str(ava_dir / 'proposals.pkl'),
                             keyframes='annotated')
    assert [(s.video_id, s.timestamp) for s in annotated.samples] == keys[:3]


def test_select_proposals_hand_values():
    props = np.array([[0, 0, 1, 1, 0.3], [0, 0, 0.5, 0.5, 0.95], [0.5, 0.5, 1, 1, 0.9]], dtype=np.float32)
    boxes, scores = select_proposals(props, 0.9)
    np.testing.assert_allclose(scores, [0.95, 0.9])
    boxes, scores = select_proposals(props[:1], 0.9)
    np.testing.assert_allclose(scores, [0.3])
    boxes, scores = select_proposals(np.zeros((0, 5), np.float32), 0.9)
    np.testing.assert_allclose(boxes, [[0, 0, 1, 1]])
    boxes, scores = select_proposals(props[:, :4], 0.9, max_proposals=2)  # no scores: all kept, up to the cap
    assert len(boxes) == 2 and scores.tolist() == [1.0, 1.0]


def capture_log(monkeypatch) -> list[str]:
    """Messages the dataset logs (mmengine's logger keeps the stdout of the test that created it, so capture the
    call instead of the stream)."""
    import tasks.detection.dataset as dataset_module
    messages: list[str] = []
    monkeypatch.setattr(dataset_module, 'print_log', lambda msg, **kw: messages.append(f"{kw.get('level')}: {msg}"))
    return messages


def test_broken_video_at_test_time_is_reported_and_scores_nothing(ava_dir, tmp_path, monkeypatch):
    videos = tmp_path / 'videos'
    videos.mkdir()
    (videos / 'vidA.mp4').write_bytes((ava_dir / 'videos' / 'vidA.mp4').read_bytes())
    (videos / 'vidB.mp4').write_bytes(b'not a video')
    ds = VideoMAEv2AVADataset(str(ava_dir / 'train.csv'), str(videos), num_classes=3, clip_len=4, frame_interval=4,
                              test_mode=True, test_short_side=None, exclude_file=str(ava_dir / 'excluded.csv'))
    log = capture_log(monkeypatch)
    item = ds[2]  # vidB 903
    assert item['data_samples']['failed'] and item['inputs'].abs().sum() == 0
    assert len(log) == 1 and log[0].startswith(f'{logging.WARNING}: skipping')
    assert 'vidB.mp4' in log[0] and 'train.csv, line 5' in log[0]
    metric = VideoMAEv2AVAMetric(str(ava_dir / 'train.csv'), str(ava_dir / 'labels.pbtxt'), baseline_seeds=0)
    outputs = [dict(video_id='vidA', timestamp=902, boxes=torch.tensor([BOX]), scores=torch.tensor([[0.9, 0.1, 0.8]]),
                    failed=None),
               dict(video_id='vidB', timestamp=903, boxes=torch.tensor([BOX]), scores=torch.tensor([[0.9, 0.1, 0.8]]),
                    failed=item['data_samples']['failed'])]
    metric.process({}, outputs)
    rows = metric.detection_rows(metric.results)
    assert {(r.video_id, r.timestamp, r.action_id) for r in rows} == {('vidA', 902, 1), ('vidA', 902, 3)}


def test_broken_video_in_training_is_replaced(ava_dir, tmp_path, monkeypatch):
    videos = tmp_path / 'videos'
    videos.mkdir()
    (videos / 'vidA.mp4').write_bytes((ava_dir / 'videos' / 'vidA.mp4').read_bytes())
    ds = VideoMAEv2AVADataset(str(ava_dir / 'train.csv'), str(videos), num_classes=3, clip_len=4, frame_interval=4,
                              train_scale=(48, 48), crop_size=48, exclude_file=str(ava_dir / 'excluded.csv'))
    log = capture_log(monkeypatch)
    item = ds[(0, 2)]  # vidB 903: the file is missing
    assert item['data_samples']['video_id'] == 'vidA'
    assert item['data_samples']['skipped'][0][1] == 'file does not exist'
    ds[(1, 2)]  # reported once per process
    assert len(log) == 1 and 'vidB.mp4' in log[0]


def test_malformed_annotations_name_file_and_line(ava_dir, tmp_path):
    bad = tmp_path / 'bad.csv'
    bad.write_text('vidA,0902,0.1,0.1,0.5,0.5,1,0\nvidA,0903,0.1,0.1,1.5,0.5,1,0\n')
    with pytest.raises(AnnotationError, match=r'bad\.csv, line 2: x2 = 1\.5 is outside \[0, 1\]'):
        VideoMAEv2AVADataset(str(bad), str(ava_dir / 'videos'), num_classes=3)
    bad.write_text('vidA,0902,0.1,0.1,0.5,0.5,1,0\nvidA,0903,0.1,0.1,0.5,0.5,7,0\n')
    with pytest.raises(AnnotationError, match=r'bad\.csv, line 2: action id 7 is larger than num_classes=3'):
        VideoMAEv2AVADataset(str(bad), str(ava_dir / 'videos'), num_classes=3)


def test_collate_keeps_clips_of_different_sizes():
    batch = [dict(inputs=torch.zeros(3, 2, 32, 48), data_samples={'a': 1}),
             dict(inputs=torch.zeros(3, 2, 48, 32), data_samples={'a': 2})]
    out = videomaev2_ava_collate(batch)
    assert [tuple(c.shape) for c in out['inputs']] == [(3, 2, 32, 48), (3, 2, 48, 32)]
    assert out['data_samples'] == [{'a': 1}, {'a': 2}]


def test_backbone_weights_load_through_the_checkpoint_loader(tmp_path):
    # backbone.pretrained goes through backbone.load_checkpoint when the Runner initialises the model: a
    # classification ViT's weights (with fc_norm and a head) load into the detector's backbone, head dropped,
    # detection norm fresh.
    src = VideoMAEv2ViT('vit_test', img_size=32, all_frames=2, num_classes=5)
    path = tmp_path / 'vit.pth'
    torch.save({'model': src.state_dict()}, path)
    model = VideoMAEv2AVADetector(backbone=dict(arch='vit_test', img_size=32, all_frames=2, pretrained=str(path)),
                                  roi_head=dict(num_classes=3))
    model.init_weights()
    torch.testing.assert_close(model.backbone.blocks[1].attn.qkv.weight, src.blocks[1].attn.qkv.weight)


def test_every_detector_parameter_gets_a_gradient():
    """DDP without ``find_unused_parameters`` stops at the second iteration if a parameter gets no gradient: the
    detector's ViT has no pooling norm (``fc_norm``), which its feature map would never use."""
    model = VideoMAEv2AVADetector(backbone=dict(arch='vit_test', img_size=32, all_frames=2),
                                  roi_head=dict(num_classes=3))
    assert not any('fc_norm' in name for name, _ in model.named_parameters())
    sample = dict(boxes=torch.tensor([[0.0, 0.0, 16.0, 32.0], [8.0, 8.0, 32.0, 24.0]]),
                  labels=torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]))
    model.loss(torch.randn(1, 3, 2, 32, 32), [sample])['loss_action_cls'].backward()
    assert [name for name, p in model.named_parameters() if p.grad is None] == []
    with pytest.raises(ValueError, match='fc_norm=True.*uses only forward_featmap'):
        VideoMAEv2AVADetector(backbone=dict(arch='vit_test', fc_norm=True), roi_head=dict(num_classes=3))


# ----------------------------------------------------------------------------------------------------------------------
# configs: the published recipes (docs/ava.md#roi-head, docs/ava.md#data-and-schedules)
# ----------------------------------------------------------------------------------------------------------------------

CONFIG_DIR = __import__('pathlib').Path(__file__).resolve().parents[2] / 'configs' / 'detection' / 'ava'
# arch: (file prefix, lr, layer decay, epochs, warmup epochs, drop path, train crop, keyframes per step x GPUs)
RECIPES = {
    'vit_base': ('vit-base-p16', 1.25e-4, 0.75, 20, 5, 0.2, 256, 64),
    'vit_large': ('vit-large-p16', 2.5e-4, 0.8, 20, 5, 0.2, 256, 64),
    'vit_giant': ('vit-giant-p14', 3e-4, 0.9, 10, 2, 0.3, 252, 128),
}


@pytest.mark.parametrize('arch', sorted(RECIPES))
def test_configs_follow_the_published_recipes(arch):
    from mmengine.config import Config

    from backbone import ARCH_PRESETS

    prefix, lr, decay, epochs, warmup, drop_path, crop, batch = RECIPES[arch]
    (path,) = CONFIG_DIR.glob(f'{prefix}_*.py')
    cfg = Config.fromfile(str(path))
    assert cfg.model.type == 'VideoMAEv2AVADetector' and cfg.model.backbone.arch == arch
    assert cfg.model.backbone.drop_path_rate == drop_path
    assert cfg.optim_wrapper.optimizer.type == 'AdamW' and cfg.optim_wrapper.optimizer.lr == lr
    assert cfg.optim_wrapper.optimizer.weight_decay == 0.05
    assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == decay
    assert cfg.train_cfg.max_epochs == epochs
    warm, cosine = cfg.param_scheduler
    assert (warm.type, warm.start_factor, warm.end) == ('LinearLR', 0.1, warmup)
    assert (cosine.type, cosine.begin, cosine.end, cosine.T_max) == ('CosineAnnealingLR', warmup, epochs,
                                                                     epochs - warmup)
    # 8 GPUs for B/L, 16 for g (the file names say so): the per-GPU batch times the GPUs is the recipe's batch
    gpus = int(path.name.split('_')[2].split('xb')[0])
    assert gpus * cfg.train_dataloader.batch_size == batch
    data = cfg.train_dataloader.dataset
    assert (data.clip_len, data.frame_interval, data.crop_size) == (16, 4, crop)
    assert crop % ARCH_PRESETS[arch]['patch_size'] == 0  # whole patches in training
    test = cfg.test_dataloader.dataset
    assert test.test_mode and test.test_short_side == 256 and test.person_det_score_thr == 0.9
    assert cfg.test_dataloader.batch_size == 1
    assert cfg.test_evaluator.type == 'VideoMAEv2AVAMetric' and cfg.test_evaluator.protocol == 'official'
    assert cfg.model.roi_head.num_classes == 80 and cfg.model.roi_head.output_size == 8
    assert cfg.model.roi_head.dropout == 0.5 and 'spatial_scale' not in cfg.model.roi_head


def test_cached_videos_give_the_same_samples(ava_dir):
    """cache_videos_mb serves each keyframe's clip from one whole decode per video, with the same training and test
    samples as decoding every clip afresh."""
    for test_mode in (False, True):
        plain = make_dataset(ava_dir, test_mode=test_mode)
        cached = make_dataset(ava_dir, test_mode=test_mode, cache_videos_mb=64)
        for epoch in range(2):
            for i in range(len(plain)):
                a, b = plain[(epoch, i)], cached[(epoch, i)]
                assert torch.equal(a['inputs'], b['inputs'])
                for k, v in a['data_samples'].items():
                    w = b['data_samples'][k]
                    same = torch.equal(v, w) if isinstance(v, torch.Tensor) else (
                        np.array_equal(v, w) if isinstance(v, np.ndarray) else v == w)
                    assert same, k
        assert cached.video_cache.misses == 2  # vidA and vidB, each decoded once
