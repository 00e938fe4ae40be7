"""cosim: SimPy co-simulation of personalized federated learning over wireless networks.

The only package that joins ``radio`` (physics) and ``learning`` (PyTorch): scenario
schema, discrete-event engine, policies, traces and the command line.
"""

__version__ = "0.1.0"
