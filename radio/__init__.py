"""Pure, vectorised wireless physics over arrays of devices.

Path loss (3GPP TR 38.901 and classic models), shadowing and block fading, mobility,
link rate, OFDMA bandwidth allocation, and CPU/DVFS compute and energy. Depends on
numpy, scipy and networkx only: never on SimPy, PyTorch or the rest of cosim.
"""
