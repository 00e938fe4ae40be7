"""UE power consumption: what the device draws from its battery in each radio state.

The power the antenna *radiates* (which sets the SINR) is not what the phone draws:
the power amplifier (PA) converts supply power into RF power with efficiency η_PA,
and the rest of the transmitting modem (baseband, RF transceiver, the
connected-mode base load) draws a roughly constant circuit power on top. cosim uses
the linear state model

    transmit:  P_drawn = P_circuit + P_radiated / η_PA          [W]
    receive:   P_drawn = P_rx                                     [W]
    idle:      P_drawn = P_idle (connected DRX / idle floor)      [W]

(the form of the "power consumption = circuit + PA" models, e.g. Auer et al.,
"How much energy is needed to run a wireless network?", IEEE Wireless Commun. 2011,
applied to the UE side). One power, one truth: ``P_radiated`` is the same power
the link budget uses for the SINR (a flow's power on its allocated resources), and
the engine charges ``P_drawn`` on exactly the airtime the flow held.

Where the numbers come from (per profile in :data:`radio.compute.PROFILES`):

- Phones. Jensen et al., "LTE UE Power Consumption Model: For System Level Energy
  and Performance Optimization", IEEE VTC-Fall 2012 (a commercial LTE dongle), and
  Lauridsen et al., "An Empirical LTE Smartphone Power Model with a View to Energy
  Efficiency Evolution", Intel Technology Journal 18(1), 2014 (LTE smartphones),
  measured a cellular subsystem that draws on the order of 1 W as soon as it is
  connected and receiving, rising steeply with transmit power once the PA dominates
  (above ~10 dBm) to roughly 2–3 W at 23 dBm; uplink transmit power and being
  connected at all are the main consumers, data rate a minor one. cosim rounds
  this to P_rx ≈ 0.9–1.0 W, P_circuit ≈ 1.1–1.2 W and a constant average PA
  efficiency η_PA = 0.20–0.30 (handset PAs reach 30–40 % at rated power with
  LTE-modulated signals, less in back-off), which gives 1.9–2.1 W drawn at 23 dBm.
  A constant η slightly overstates the drawn power at low output (real PAs lose
  efficiency in back-off but also lower their supply), a second-order effect next
  to P_circuit there.
- IoT module. 3GPP TR 45.820 (cellular IoT, §5.4 energy-consumption methodology)
  assumes 500 mW drawn while transmitting at 23 dBm, 80 mW receiving and a few mW
  in light sleep; η_PA = 0.45 with P_circuit = 56 mW reproduces the 500 mW at
  23 dBm.
- Idle is the connected-mode DRX / light-sleep floor of the modem (tens of mW for
  phones): the platform's own idle draw (screen, OS) is not attributed to FL.

Not modelled: rate-dependent baseband power (the smaller term in both measurements),
RRC state-machine tails and promotion delays, DRX cycles inside a transfer, and the
PA's efficiency curve versus output power.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["drawn_tx_power_w"]


def drawn_tx_power_w(
    radiated_w: ArrayLike, pa_efficiency: ArrayLike, tx_circuit_power_w: ArrayLike
) -> NDArray[np.float64]:
    """Battery power drawn while transmitting ``radiated_w``: ``P_circuit + P_rad/η_PA``.

    Args:
        radiated_w: radiated transmit power [W], >= 0, shape (n_devices,) or scalar
            (the power the SINR was computed with).
        pa_efficiency: PA efficiency η_PA, in (0, 1], broadcastable.
        tx_circuit_power_w: non-PA transmit circuit power [W], >= 0, broadcastable.

    Returns:
        drawn power [W], broadcast shape.

    Raises:
        ValueError: a negative or NaN radiated power, η outside (0, 1], or a
            negative circuit power (naming the argument and its values).
    """
    p = np.asarray(radiated_w, dtype=np.float64)
    eta = np.asarray(pa_efficiency, dtype=np.float64)
    circuit = np.asarray(tx_circuit_power_w, dtype=np.float64)
    if np.any(~(p >= 0.0)):
        raise ValueError(f"radiated_w={p.tolist()} out of range; allowed: >= 0 [W]")
    if np.any(~((eta > 0.0) & (eta <= 1.0))):
        raise ValueError(f"pa_efficiency={eta.tolist()} out of range; allowed: (0, 1]")
    if np.any(~(circuit >= 0.0)):
        raise ValueError(f"tx_circuit_power_w={circuit.tolist()} out of range; allowed: >= 0 [W]")
    return circuit + p / eta
