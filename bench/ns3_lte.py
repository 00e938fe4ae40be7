"""ns-3 LTE + EPC harness for bench/validate_ns3.py (needs the optional ``ns3`` extra).

One function, :func:`run_case`, builds an ns-3 (PyPI ``ns3`` 3.44, Python bindings
through cppyy) LTE network with EPC, runs it and returns, per measured UE, the time
from the start of its transfer until the last of its bytes reached the receiver.
The scenario is written in C++ (JIT-compiled once per process with cppyy) because
trace callbacks and the watchdog must run inside the simulator.

Set-up (what cosim is compared against):
* eNBs and UEs with 20 MHz (100 RB) in both directions, eNB 43 dBm, UE 23 dBm
  (P_CMAX 23 dBm, ns-3's default open/closed-loop PUSCH power control), noise figures
  eNB 5 dB / UE 9 dB (cosim's defaults), no fast fading, PF scheduler (ns-3 default),
  ideal RRC, RLC AM with a 100 MB buffer (so a burst of UDP packets is queued, not dropped).
* Propagation: ``MatrixPropagationLossModel`` on both spectrum channels, loaded with the
  loss cosim's own ``radio.pathloss`` model gives for every eNB–UE pair (so the path loss
  is identical by construction); UE–UE and eNB–eNB pairs get 250 dB.
* Traffic: each measured UE sends (uplink) or receives (downlink) ``nbytes`` of UDP
  payload in 1400 B packets handed to the socket at t0 = 1 s (after attach); background
  UEs run a saturating UDP stream from 0.4 s so their cell is fully loaded.
* A measured UE that has not received everything within ``max_s`` — or when no byte has
  moved for ``stall_s`` — is reported as not completed (time −1).
"""

from __future__ import annotations

import math

_CPP = r"""
#include "ns3/core-module.h"
#include "ns3/network-module.h"
#include "ns3/internet-module.h"
#include "ns3/mobility-module.h"
#include "ns3/lte-module.h"
#include "ns3/point-to-point-module.h"
#include "ns3/applications-module.h"
#include "ns3/propagation-module.h"
#include <sstream>

namespace cosim_ns3 {
using namespace ns3;

struct State {
    std::vector<uint64_t> rx;
    std::vector<double> done;
    uint64_t target = 0;
    double t0 = 0.0;
    int pending = 0;
    uint64_t lastTotal = 0;
    double lastProgress = 0.0;
    double stallS = 1e9;
    uint64_t background = 0;
};
static State g;

static void OnRx(uint32_t i, Ptr<const Packet> p, const Address &) {
    g.rx[i] += p->GetSize();
    if (g.done[i] < 0 && g.rx[i] >= g.target) {
        g.done[i] = Simulator::Now().GetSeconds() - g.t0;
        if (--g.pending == 0) Simulator::Stop();
    }
}

static void OnBackgroundRx(Ptr<const Packet> p, const Address &) { g.background += p->GetSize(); }

static void Watchdog(double period) {
    uint64_t total = 0;
    for (auto r : g.rx) total += r;
    double now = Simulator::Now().GetSeconds();
    if (total != g.lastTotal) { g.lastTotal = total; g.lastProgress = now; }
    if (now > g.t0 && now - std::max(g.lastProgress, g.t0) > g.stallS) { Simulator::Stop(); return; }
    Simulator::Schedule(Seconds(period), &Watchdog, period);
}

static void AddSender(Ptr<Node> from, Ipv4Address to, uint16_t port, uint32_t size, uint32_t count,
                      double intervalS, double startS, double stopS) {
    UdpClientHelper c(to, port);
    c.SetAttribute("MaxPackets", UintegerValue(count));
    c.SetAttribute("Interval", TimeValue(Seconds(intervalS)));
    c.SetAttribute("PacketSize", UintegerValue(size));
    ApplicationContainer a = c.Install(from);
    a.Start(Seconds(startS));
    a.Stop(Seconds(stopS));
}

std::string RunCase(const std::vector<double>& enbX, const std::vector<double>& enbY,
                    const std::vector<double>& ueX, const std::vector<double>& ueY,
                    const std::vector<int>& ueCell, const std::vector<int>& ueRole,
                    const std::vector<double>& lossDb, uint64_t nbytes, bool uplink,
                    double maxS, double stallS, uint32_t run, bool puschCqi) {
    const uint32_t nEnb = enbX.size(), nUe = ueX.size();
    RngSeedManager::SetSeed(1);
    RngSeedManager::SetRun(run);
    Config::SetDefault("ns3::LteRlcAm::MaxTxBufferSize", UintegerValue(100 * 1024 * 1024));
    Config::SetDefault("ns3::LteRlcUm::MaxTxBufferSize", UintegerValue(100 * 1024 * 1024));
    Config::SetDefault("ns3::LteEnbRrc::EpsBearerToRlcMapping", EnumValue(LteEnbRrc::RLC_AM_ALWAYS));
    Config::SetDefault("ns3::LteUePhy::TxPower", DoubleValue(23.0));
    Config::SetDefault("ns3::LteUePowerControl::Pcmax", DoubleValue(23.0));
    Config::SetDefault("ns3::LteEnbPhy::TxPower", DoubleValue(43.0));
    Config::SetDefault("ns3::LteEnbPhy::NoiseFigure", DoubleValue(5.0));
    Config::SetDefault("ns3::LteUePhy::NoiseFigure", DoubleValue(9.0));
    Config::SetDefault("ns3::FfMacScheduler::UlCqiFilter",
                       EnumValue(puschCqi ? FfMacScheduler::PUSCH_UL_CQI : FfMacScheduler::SRS_UL_CQI));

    Ptr<LteHelper> lte = CreateObject<LteHelper>();
    Ptr<PointToPointEpcHelper> epc = CreateObject<PointToPointEpcHelper>();
    lte->SetEpcHelper(epc);
    lte->SetPathlossModelType(MatrixPropagationLossModel::GetTypeId());
    lte->SetEnbDeviceAttribute("DlBandwidth", UintegerValue(100));
    lte->SetEnbDeviceAttribute("UlBandwidth", UintegerValue(100));

    Ptr<Node> pgw = epc->GetPgwNode();
    NodeContainer remote; remote.Create(1);
    InternetStackHelper internet; internet.Install(remote);
    PointToPointHelper p2p;
    p2p.SetDeviceAttribute("DataRate", DataRateValue(DataRate("100Gb/s")));
    p2p.SetDeviceAttribute("Mtu", UintegerValue(1500));
    p2p.SetChannelAttribute("Delay", TimeValue(Seconds(0.0)));
    NetDeviceContainer inet = p2p.Install(pgw, remote.Get(0));
    Ipv4AddressHelper ipv4h; ipv4h.SetBase("1.0.0.0", "255.0.0.0");
    Ipv4InterfaceContainer ifs = ipv4h.Assign(inet);
    Ipv4Address remoteAddr = ifs.GetAddress(1);
    Ipv4StaticRoutingHelper routing;
    routing.GetStaticRouting(remote.Get(0)->GetObject<Ipv4>())
        ->AddNetworkRouteTo(Ipv4Address("7.0.0.0"), Ipv4Mask("255.0.0.0"), 1);

    NodeContainer enbs; enbs.Create(nEnb);
    NodeContainer ues; ues.Create(nUe);
    Ptr<ListPositionAllocator> pos = CreateObject<ListPositionAllocator>();
    for (uint32_t i = 0; i < nEnb; ++i) pos->Add(Vector(enbX[i], enbY[i], 25.0));
    for (uint32_t j = 0; j < nUe; ++j) pos->Add(Vector(ueX[j], ueY[j], 1.5));
    MobilityHelper mob; mob.SetMobilityModel("ns3::ConstantPositionMobilityModel");
    mob.SetPositionAllocator(pos);
    mob.Install(enbs); mob.Install(ues);

    NetDeviceContainer enbDevs = lte->InstallEnbDevice(enbs);
    NetDeviceContainer ueDevs = lte->InstallUeDevice(ues);
    for (Ptr<SpectrumChannel> ch : {lte->GetUplinkSpectrumChannel(), lte->GetDownlinkSpectrumChannel()}) {
        Ptr<MatrixPropagationLossModel> m = DynamicCast<MatrixPropagationLossModel>(ch->GetPropagationLossModel());
        NS_ABORT_MSG_IF(!m, "path-loss model is not a MatrixPropagationLossModel");
        m->SetDefaultLoss(250.0);
        for (uint32_t i = 0; i < nEnb; ++i)
            for (uint32_t j = 0; j < nUe; ++j)
                m->SetLoss(enbs.Get(i)->GetObject<MobilityModel>(), ues.Get(j)->GetObject<MobilityModel>(),
                           lossDb[i * nUe + j], true);
    }
    internet.Install(ues);
    Ipv4InterfaceContainer ueIfs = epc->AssignUeIpv4Address(ueDevs);
    for (uint32_t j = 0; j < nUe; ++j) {
        routing.GetStaticRouting(ues.Get(j)->GetObject<Ipv4>())->SetDefaultRoute(epc->GetUeDefaultGatewayAddress(), 1);
        lte->Attach(ueDevs.Get(j), enbDevs.Get(ueCell[j]));
    }

    const double t0 = 1.0, stop = t0 + maxS;
    const uint32_t pkt = 1400;
    g = State();
    g.target = nbytes; g.t0 = t0; g.stallS = stallS; g.lastProgress = t0;
    uint32_t measured = 0;
    for (uint32_t j = 0; j < nUe; ++j) {
        uint16_t port = 10000 + j;
        Ptr<Node> src = uplink ? ues.Get(j) : remote.Get(0);
        Ptr<Node> dst = uplink ? remote.Get(0) : ues.Get(j);
        Ipv4Address dstAddr = uplink ? remoteAddr : ueIfs.GetAddress(j);
        if (ueRole[j] == 0) continue;
        PacketSinkHelper sinkH("ns3::UdpSocketFactory", InetSocketAddress(Ipv4Address::GetAny(), port));
        ApplicationContainer sink = sinkH.Install(dst);
        sink.Start(Seconds(0.1));
        if (ueRole[j] == 1) {
            uint32_t idx = measured++;
            g.rx.push_back(0); g.done.push_back(-1.0); g.pending++;
            sink.Get(0)->TraceConnectWithoutContext("Rx", MakeBoundCallback(&OnRx, idx));
            uint32_t full = nbytes / pkt, rest = nbytes % pkt;
            AddSender(src, dstAddr, port, pkt, full, 1e-6, t0, stop);
            if (rest > 0) AddSender(src, dstAddr, port, std::max<uint32_t>(rest, 12), 1, 1e-6, t0 + full * 1e-6, stop);
        } else {
            sink.Get(0)->TraceConnectWithoutContext("Rx", MakeCallback(&OnBackgroundRx));
            AddSender(src, dstAddr, port, pkt, 0, 8.0 * pkt / 150e6, 0.4, stop);  // 150 Mb/s: saturates the cell
        }
    }
    Simulator::Schedule(Seconds(t0), &Watchdog, 0.25);
    Simulator::Stop(Seconds(stop));
    Simulator::Run();
    std::ostringstream out;
    out.precision(9);
    out << g.background << "|" << Simulator::Now().GetSeconds();
    for (uint32_t i = 0; i < measured; ++i) out << ";" << g.done[i] << "," << g.rx[i];
    Simulator::Destroy();
    return out.str();
}
double ThreeGppUmaLossDb(double d2dM, double hBsM, double hUtM, bool los, double carrierHz) {
    Ptr<ThreeGppUmaPropagationLossModel> m = CreateObject<ThreeGppUmaPropagationLossModel>();
    m->SetAttribute("Frequency", DoubleValue(carrierHz));
    m->SetAttribute("ShadowingEnabled", BooleanValue(false));
    Ptr<ChannelConditionModel> cc;
    if (los) cc = CreateObject<AlwaysLosChannelConditionModel>();
    else cc = CreateObject<NeverLosChannelConditionModel>();
    m->SetChannelConditionModel(cc);
    Ptr<ConstantPositionMobilityModel> a = CreateObject<ConstantPositionMobilityModel>();
    Ptr<ConstantPositionMobilityModel> b = CreateObject<ConstantPositionMobilityModel>();
    a->SetPosition(Vector(0.0, 0.0, hBsM));
    b->SetPosition(Vector(d2dM, 0.0, hUtM));
    return -m->CalcRxPower(0.0, a, b);
}
}  // namespace cosim_ns3
"""

_compiled = False


def available() -> tuple[bool, str]:
    """Whether the ``ns3`` package can be imported; (False, reason) if not."""
    try:
        import importlib.util

        if importlib.util.find_spec("ns") is None:
            return False, "the 'ns3' package is not installed (pip install 'cosim[ns3]' or pip install ns3)"
    except (ImportError, ValueError) as exc:  # pragma: no cover - broken installs
        return False, f"ns3 cannot be imported: {exc}"
    return True, ""


def _ensure_compiled():
    global _compiled
    from ns import ns  # noqa: F401  (loads the ns-3 libraries and headers; slow)
    import cppyy

    if not _compiled:
        cppyy.cppdef(_CPP)
        _compiled = True
    return cppyy.gbl.cosim_ns3


def threegpp_uma_loss_db(d2d_m: float, los: bool, h_bs_m: float = 25.0, h_ut_m: float = 1.5, carrier_hz: float = 3.5e9) -> float:
    """ns-3's own ``ThreeGppUmaPropagationLossModel`` (shadowing off, LOS forced) [dB]."""
    return float(_ensure_compiled().ThreeGppUmaLossDb(float(d2d_m), float(h_bs_m), float(h_ut_m), bool(los), float(carrier_hz)))


def run_case(
    enb_xy_m: list[tuple[float, float]],
    ue_xy_m: list[tuple[float, float]],
    ue_cell: list[int],
    ue_role: list[int],
    loss_db: list[list[float]],
    nbytes: int,
    uplink: bool = True,
    max_s: float = 30.0,
    stall_s: float = 3.0,
    run: int = 1,
    pusch_cqi: bool = True,
    debug: dict | None = None,
) -> list[tuple[float, int]]:
    """Run one ns-3 LTE case; return ``(completion_s or nan, bytes_received)`` per measured UE.

    Args:
        enb_xy_m: eNB positions [m] (heights 25 m).
        ue_xy_m: UE positions [m] (heights 1.5 m).
        ue_cell: index of the eNB each UE attaches to.
        ue_role: per UE, 1 = measured transfer of ``nbytes``, 2 = saturating background
            load in the same direction, 0 = idle.
        loss_db: path loss [dB], ``loss_db[enb][ue]``.
        nbytes: UDP payload of each measured transfer [bytes].
        uplink: direction (True: UE → remote host).
        max_s: simulated time allowed for the transfers [s].
        stall_s: stop early when no byte moved for this long [s].
        run: ns-3 RNG run number.
        pusch_cqi: uplink AMC from the SINR measured on the PUSCH (the data, with its
            power on the allocated RBs and the interference it meets) rather than from
            the full-band SRS (ns-3's default, which sees neither).
        debug: if a dict, receives ``background_bytes`` (delivered by the background
            UEs) and ``end_s`` (simulated time at the end).
    """
    mod = _ensure_compiled()
    flat = [float(loss_db[i][j]) for i in range(len(enb_xy_m)) for j in range(len(ue_xy_m))]
    out = str(
        mod.RunCase(
            [float(x) for x, _ in enb_xy_m], [float(y) for _, y in enb_xy_m],
            [float(x) for x, _ in ue_xy_m], [float(y) for _, y in ue_xy_m],
            [int(c) for c in ue_cell], [int(r) for r in ue_role], flat,
            int(nbytes), bool(uplink), float(max_s), float(stall_s), int(run), bool(pusch_cqi),
        )
    )
    results = []
    head, *items = out.split(";")
    background_bytes, end_s = head.split("|")
    if debug is not None:
        debug["background_bytes"] = int(float(background_bytes))
        debug["end_s"] = float(end_s)
    for item in items:
        t, b = item.split(",")
        t_s = float(t)
        results.append((t_s if t_s >= 0 else math.nan, int(float(b))))
    return results
