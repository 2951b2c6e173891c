"""The data floor: video decoding and clip sampling (``video``), annotation readers for every benchmark
(``annotations``), the shipped class names (``labels``), the epoch-aware data sampler (``epoch_sampler``) and the
embedded synthetic benchmark (``synthetic``). It imports nothing from the rest of the suite.
"""
