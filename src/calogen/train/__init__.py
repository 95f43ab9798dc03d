"""The training loop: optimisers, EMA, schedules, checkpoints, exact resume, data-parallel
training, progress and logs (:mod:`calogen.train.trainer`), the in-memory training data
(:mod:`calogen.train.data`), and generation with any sampler (:mod:`calogen.train.generation`).
"""
