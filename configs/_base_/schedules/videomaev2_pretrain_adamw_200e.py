# Optimiser and schedule of the official ViT-B pre-training script (OpenGVLab/VideoMAEv2:
# scripts/pretrain/vit_b_hybrid_pt.sh, run_mae_pretraining.py; docs/pretraining.md#recipe): 200 epochs (x 4
# repeated-augmentation views = the paper's "800 epochs"), 20 warmup epochs, AdamW, per-iteration cosine.

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=200)

optim_wrapper = dict(
    # 'BF16AutocastOptimWrapper' (tasks.engine) runs the forward pass in bfloat16 on CPU or GPU; mmengine's
    # AmpOptimWrapper (float16 + loss scaler, the official NativeScaler set-up) needs a GPU.
    type='OptimWrapper',
    # lr of the script's total batch: run_mae_pretraining.py multiplies the official --lr 1e-3 (per 256 videos) by
    # GPUs x batch / 256 = 32 x 32 / 256: 4e-3 (auto_scale_lr below).
    optimizer=dict(type='AdamW', lr=4e-3, betas=(0.9, 0.95), weight_decay=0.05, eps=1e-8),
    # The official optimiser factory exempts from weight decay every 1-D parameter (norms, biases, q_bias, v_bias)
    # and the names in no_weight_decay() (mask_token; pos_embed, which is a fixed buffer here, not a parameter).
    # mmengine's default constructor, logging one summary line instead of a line per parameter (tasks.engine)
    constructor='SummarizedOptimWrapperConstructor',
    paramwise_cfg=dict(
        norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0,
        custom_keys={'mask_token': dict(decay_mult=0.0), 'pos_embed': dict(decay_mult=0.0)}),
    clip_grad=None)  # official --clip_grad: none for ViT-B/L/H

# lr per iteration (convert_to_iter_based): linear warmup from warmup_lr, then cosine to min_lr over the remaining
# iterations, like the official utils.cosine_scheduler. The official code scales --lr (1e-3), --warmup_lr (default
# 1e-6) and --min_lr (default 1e-5) by the same batch / 256 factor, so the ratios below hold at any batch:
#   start_factor = 1e-6 / 1e-3, eta_min_ratio = 1e-5 / 1e-3.
# (mmengine's warmup reaches the peak one iteration later than np.linspace does: a difference of at most
# lr / warmup_iters during warmup only.)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, end_factor=1.0, by_epoch=True, begin=0, end=20,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-2, by_epoch=True, begin=20, end=200, T_max=180,
         convert_to_iter_based=True),
]

# The total batch (GPUs x train_dataloader.batch_size, in videos, not counting the 4 views) the lr above is set for.
# Off, as in mmaction2: another total batch keeps the lr (tools/train.py warns); tools/train.py --auto-scale-lr
# multiplies it by GPUs x batch_size / base_batch_size, the official rule.
auto_scale_lr = dict(enable=False, base_batch_size=1024)
