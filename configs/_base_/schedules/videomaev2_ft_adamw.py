# Optimiser and schedule of the official fine-tuning (OpenGVLab/VideoMAEv2: run_class_finetuning.py,
# scripts/finetune/vit_b_k400_ft.sh; docs/backbone.md#pooling-head-and-initialisation,
# docs/classification.md#fine-tuning-recipe): AdamW (0.9, 0.999), eps 1e-8, wd 0.05, layer-wise lr decay, 5 warmup
# epochs from warmup_lr, then a per-iteration cosine to min_lr. Numbers of the ViT-B Kinetics-400 script; the leaf
# configs restate lr, auto_scale_lr, layer decay, epochs and the two scheduler ratios.

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=90, val_begin=1, val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    # 'BF16AutocastOptimWrapper' (tasks.engine) runs the forward pass in bfloat16 on CPU or GPU; mmengine's
    # AmpOptimWrapper (float16 + loss scaler; the official DeepSpeed fp16 set-up) needs a GPU.
    type='OptimWrapper',
    # Parameter groups exactly as the official optim_factory (docs/backbone.md#pooling-head-and-initialisation):
    # layer id 0 for patch_embed/pos_embed, k + 1 for blocks.k, L + 1 for fc_norm and head; lr scale =
    # layer_decay ** (L + 1 - id); no weight decay for 1-D parameters, biases and no_weight_decay().
    constructor='VideoMAEv2LayerDecayConstructor',
    # lr of the script's total batch: the official --lr 7e-4 is per 256 videos and the script multiplies it by
    # GPUs x batch / 256 = 32 x 16 / 256 (the RA views are not counted): 1.4e-3 (auto_scale_lr below).
    optimizer=dict(type='AdamW', lr=1.4e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
    paramwise_cfg=dict(layer_decay_rate=0.75),
    clip_grad=None)  # official --clip_grad: none, except ViT-g on K710 (5.0)

# lr per iteration (convert_to_iter_based): linear warmup from warmup_lr (official default 1e-8) over 5 epochs, then
# cosine to min_lr (default 1e-6). The official script scales lr, warmup_lr and min_lr by the same batch / 256 factor,
# so the ratios are those of the per-256 values at any batch: start_factor = 1e-8 / 7e-4, eta_min_ratio = 1e-6 / 7e-4.
# The ratio form keeps the per-layer scales through the whole schedule (tasks/engine/layer_decay.py).
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-8 / 7e-4, end_factor=1.0, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-6 / 7e-4, by_epoch=True, begin=5, end=90, T_max=85,
         convert_to_iter_based=True),
]

# The total batch (GPUs x train_dataloader.batch_size, in videos) the lr above is set for. Off, as in mmaction2: another
# total batch keeps the lr (tools/train.py warns); tools/train.py --auto-scale-lr multiplies it by
# GPUs x batch_size / base_batch_size, the official rule.
auto_scale_lr = dict(enable=False, base_batch_size=512)
