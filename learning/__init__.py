"""Pure PyTorch learning core: data and partitions, models, payloads, algorithms, executors.

Knows nothing of SimPy or the radio layer; the engine calls it through the contract
``downlink / local_update / aggregate / evaluate`` (see ``learning.algorithms``).
"""
