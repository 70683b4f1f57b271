// npctl: the operator's view of a running nodeplane daemon, over its control socket.
//   npctl [--socket PATH] [--json] COMMAND [ARGS]
// Every command is one control-protocol op; --json prints the daemon's result unchanged.
#include <unistd.h>

#include <boost/program_options.hpp>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "control/client.h"
#include "control/npctl/flags.h"
#include "control/npctl/streams.h"
#include "control/npctl/table.h"

namespace po = boost::program_options;
using nodeplane::Result;
using nodeplane::control::ControlClient;
using nodeplane::control::Json;
using nodeplane::control::TextTable;
using nodeplane::control::npctl::flagsToArgs;

namespace {

constexpr const char* kUsage = R"(usage: npctl [--socket PATH] [--json] COMMAND [ARGS]

commands:
  status                      node, addresses, generation, workers, pods
  ports                       ports with role, MAC and statistics
  workers                     per-worker counters and load
  drops [--all]               drop counters by reason (--all: include zeros)
  pods                        attached pods
  nodes                       the cluster's nodes, tunnel endpoints and their state
  node set --name N --ip IP --pod-cidr CIDR [--vtep-mac MAC]
  node delete --name N
  neighbors                   the underlay ARP table
  services                    services, backends and their Maglev shares
  flows [--service NS/NAME] [--address IP] [--port N] [--limit N]
  flows flush (--service NS/NAME | --backend IP:PORT)
  conntrack                   connection table statistics
  pod attach --namespace NS --name NAME --container-id ID --ip IP --mac MAC
             (--host-interface IF | --devargs DEVARGS) [--interface eth0] [--netns PATH]
  pod detach (--container-id ID [--interface eth0] | --namespace NS --name NAME)
  generation                  the desired-state generation in force (from the agent) and snapshot
  trace --from NS/NAME|uplink --dst IP [--src IP] [--protocol TCP|UDP|ICMP] [--sport N]
        [--dport N] [--flags SAFRP] [--payload TEXT | --dns-query NAME[/TYPE]] [--ttl N]
                              send a described packet through the real stages (nothing is sent)
  dns NAME [TYPE]             NAME looked up in the cluster DNS zone the workers answer from
  policies                    NetworkPolicies (counters) and L7 rules (matches) in force
  policy log [--limit N]      recent denied flows, audit-mode verdicts and L7 events
  observe [--follow] [--last N] [--pod NS/NAME] [--namespace NS] [--verdict V] [--port N]
          [--protocol P] [--interface NAME]
                              the flow log as JSON lines: new flows' verdicts and translations,
                              policy denials with the policy, drops with their reason
                              (V: forwarded, dropped, policy-denied, l7-denied)
  cluster peers               peer clusters: gateways, prefixes, SPIs, link state (JSON)
                              (set one: npctl call cluster.peer.set '{"clusterId": ...}')
  cluster exports             the exported services (with Globalnet: global addresses) (JSON)
  cluster imports             what peers export, and the clusterset services (JSON)
  cluster export NS/NAME [IP] give a service a global address (the lowest free one, or IP)
  cluster unexport NS/NAME    withdraw it
  capture --port NAME [--filter BPF] [--count N] [--duration S] [--snaplen N]
          [--direction rx|tx|both] -w FILE|-
                              capture a port's packets (npctl ports: uplink, host or NS/NAME)
                              into a pcapng file
  policy check --src IP --dst IP [--protocol TCP|UDP|SCTP|ICMP] [--port N]
                              how the policies in force judge a flow
  policy apply FILE           replace the policy state with FILE's JSON ("-": stdin)
  call OP [JSON-ARGS]         send any op with raw JSON args (op "ops" lists them)

options:
  --socket PATH   control socket (default /run/nodeplane/control.sock, or $NODEPLANE_SOCKET)
  --json          print the JSON result instead of a table
)";

std::string num(const Json& j) {
  if (j.is_number_float()) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.1f", j.get<double>());
    return buf;
  }
  return j.is_null() ? "-" : j.dump();
}

std::string str(const Json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return "-";
  return j[key].is_string() ? j[key].get<std::string>() : j[key].dump();
}

void printStatus(const Json& r) {
  TextTable t({"FIELD", "VALUE"});
  t.leftAlignNumbers();
  for (const char* k : {"node", "nodeIp", "podCidr", "clusterCidr", "serviceCidr", "gatewayIp",
                        "uplink", "generation", "appliedGeneration", "workers", "pods", "services",
                        "flows", "uptimeSeconds", "version", "protocol"})
    t.addRow({k, str(r, k)});
  // The overlay's settings, one row each ("vtepMac" is what kernel VTEPs need for this node).
  if (r.contains("overlay") && r["overlay"].is_object())
    for (const char* k : {"vtepMac", "vni", "udpPort", "mtu", "podMtu", "nodes"})
      t.addRow({std::string("overlay.") + k, str(r["overlay"], k)});
  std::cout << t.render();
}

void printPorts(const Json& r) {
  TextTable t({"ID", "NAME", "ROLE", "OWNER", "MAC", "LINK", "RX-PKTS", "TX-PKTS", "RX-MISSED",
               "RX-ERR", "TX-ERR"});
  for (const Json& p : r["ports"]) {
    const Json& s = p.value("stats", Json::object());
    t.addRow({num(p["id"]), str(p, "name"), str(p, "role"), str(p, "owner"), str(p, "mac"),
              p.value("linkUp", false) ? "up" : "down", num(s.value("rxPackets", Json())),
              num(s.value("txPackets", Json())), num(s.value("rxMissed", Json())),
              num(s.value("rxErrors", Json())), num(s.value("txErrors", Json()))});
  }
  std::cout << t.render();
}

void printWorkers(const Json& r) {
  TextTable t({"WORKER", "LCORE", "BUSY%", "RX-PKTS", "TX-PKTS", "DROPS", "RX-BURSTS", "LOOPS"});
  for (const Json& w : r["workers"]) {
    const Json& c = w["counters"];
    const bool control = w.value("control", false);
    t.addRow({control ? "control" : num(w["index"]), num(w["lcore"]),
              control ? "-" : num(w["busyPercent"]), num(c["rx_packets"]), num(c["tx_packets"]),
              num(c["drop_packets"]), num(c["rx_bursts"]), num(c["loops"])});
  }
  std::cout << t.render();
}

void printDrops(const Json& r) {
  TextTable t({"REASON", "PACKETS", "MEANING"});
  for (const Json& d : r["drops"]) t.addRow({str(d, "reason"), num(d["packets"]), str(d, "help")});
  std::cout << t.render();
}

void printNodes(const Json& r) {
  TextTable t({"NAME", "IP", "POD-CIDRS", "VTEP-MAC", "NEXT-HOP", "STATE"});
  for (const Json& n : r["nodes"]) {
    std::string cidrs;
    for (const Json& c : n["podCidrs"]) cidrs += (cidrs.empty() ? "" : ",") + c.get<std::string>();
    const bool self = n.value("self", false);
    t.addRow({str(n, "name"), str(n, "ip"), cidrs, self ? "-" : str(n, "vtepMac"),
              self ? "-" : str(n, "nextHop"),
              self ? "this node" : (n.value("resolved", false) ? "resolved" : "unresolved")});
  }
  std::cout << t.render();
}

void printNeighbors(const Json& r) {
  TextTable t({"IP", "MAC", "STATE", "HELD", "PROBES", "CONFIRMED-MS-AGO"});
  for (const Json& n : r["neighbors"])
    t.addRow({str(n, "ip"), str(n, "mac"), str(n, "state"), num(n["held"]), num(n["probes"]),
              num(n["confirmedMsAgo"])});
  std::cout << t.render();
}

void printServices(const Json& r) {
  TextTable t({"SERVICE", "TYPE", "CLUSTER-IP", "PORT", "NODE-PORT", "BACKEND", "LOCAL", "USABLE",
               "MAGLEV", "NO-SNAT-PORT"});
  for (const Json& s : r["services"]) {
    const std::string name = str(s, "namespace") + "/" + str(s, "name");
    const std::string vip = s["clusterIPs"].empty() ? "-" : s["clusterIPs"][0].get<std::string>();
    for (const Json& p : s["ports"]) {
      const std::string port = num(p["port"]) + "/" + str(p, "protocol");
      if (p["backends"].empty())
        t.addRow(
            {name, str(s, "type"), vip, port, str(p, "nodePort"), "(none)", "-", "-", "-", "-"});
      for (const Json& b : p["backends"])
        t.addRow({name, str(s, "type"), vip, port, str(p, "nodePort"),
                  str(b, "ip") + ":" + num(b["port"]), b.value("local", false) ? "yes" : "no",
                  b.value("usable", false) ? "yes" : "no", num(b["maglevEntries"]),
                  num(b.value("snatPortsExhausted", Json()))});
    }
  }
  std::cout << t.render();
}

void printFlows(const Json& r) {
  TextTable t({"PROTO", "STATE", "ORIGINAL", "REPLY", "SERVICE", "NAT", "WORKER"});
  for (const Json& f : r["flows"]) {
    std::string nat = f.value("dnat", false) ? "dnat" : "";
    if (f.value("snat", false)) nat += nat.empty() ? "snat" : "+snat";
    t.addRow({str(f, "protocol"), str(f, "state"), str(f, "orig"), str(f, "reply"),
              f.value("service", "").empty() ? "-" : str(f, "service"), nat.empty() ? "-" : nat,
              num(f["worker"])});
  }
  std::cout << t.render() << num(r["total"]) << " flow(s) matched\n";
}

void printConntrack(const Json& r) {
  TextTable t({"FIELD", "VALUE"});
  t.leftAlignNumbers();
  for (const char* k : {"entries", "capacity", "bytesPerFlow", "entryBytes", "memoryBytes",
                        "inserts", "evictions", "fullDrops", "expired", "removed"})
    t.addRow({k, num(r[k])});
  for (const auto& [k, v] : r["timeoutsSeconds"].items()) t.addRow({"timeout." + k, num(v)});
  std::cout << t.render();
}

void printPods(const Json& r) {
  TextTable t({"NAMESPACE", "NAME", "IP", "MAC", "PORT", "HOST-IF", "CONTAINER"});
  for (const Json& p : r["pods"]) {
    std::string cid = str(p, "containerId");
    if (cid.size() > 12) cid = cid.substr(0, 12);
    t.addRow({str(p, "namespace"), str(p, "name"), str(p, "ip"), str(p, "mac"), num(p["port"]),
              p.contains("hostInterface") ? str(p, "hostInterface") : str(p, "devargs"), cid});
  }
  std::cout << t.render();
}

void printPolicies(const Json& r) {
  if (!r.value("applied", false)) {
    std::cout << "no policy applied: pod flows are not tracked or filtered\n";
    return;
  }
  std::cout << "generation " << num(r["generation"]) << ", " << num(r["classifierRules"])
            << " classifier rules, " << num(r["isolatedIngress"])
            << " pod(s) isolated for ingress, " << num(r["isolatedEgress"]) << " for egress"
            << (r.value("audit", false) ? ", AUDIT MODE" : "") << "\n\n";
  TextTable t({"NAMESPACE", "NAME", "POD-SELECTOR", "TYPES", "MODE", "LOCAL-PODS", "RULES",
               "ALLOWED", "DENIED", "AUDIT-DENIED"});
  for (const Json& p : r["policies"]) {
    std::string types;
    for (const Json& ty : p["policyTypes"])
      types += (types.empty() ? "" : ",") + ty.get<std::string>();
    t.addRow({str(p, "namespace"), str(p, "name"), str(p, "podSelector"), types,
              p.value("audit", false) ? "audit" : "enforce", num(p["localPods"]),
              num(p["classifierRules"]), num(p["allowed"]), num(p["denied"]),
              num(p["auditDenied"])});
  }
  std::cout << t.render();
  const Json& l7 = r["l7"];
  if (!l7["rules"].empty()) {
    std::cout << "\n";
    TextTable a({"L7 RULE", "ACTION", "MATCHES"});
    for (const Json& m : l7["rules"])
      a.addRow({str(m, "source"), str(m, "action"), num(m["matches"])});
    std::cout << a.render() << "\n";
    TextTable b({"POD", "IP", "PORT", "RULESET"});
    for (const Json& m : l7["attachments"])
      b.addRow({str(m, "pod"), str(m, "ip"), m.value("port", 0) == 0 ? "all" : num(m["port"]),
                num(m["ruleset"])});
    std::cout << b.render();
  }
}

void printPolicyLog(const Json& r) {
  TextTable t({"TIME", "EVENT", "PROTO", "SOURCE", "DESTINATION", "WHY"});
  for (const Json& e : r["records"]) {
    const std::time_t secs = e.value("unixMs", int64_t{0}) / 1000;
    char when[32];
    std::strftime(when, sizeof(when), "%H:%M:%S", std::localtime(&secs));
    std::string why = e.contains("policy") ? "networkpolicy " + str(e, "policy")
                      : e.contains("l7")   ? str(e, "l7")
                                           : "-";
    t.addRow({when, str(e, "event"), str(e, "protocol"), str(e, "src") + ":" + num(e["sport"]),
              str(e, "dst") + ":" + num(e["dport"]), why});
  }
  std::cout << t.render();
  if (r.value("suppressed", 0) > 0)
    std::cout << num(r["suppressed"]) << " record(s) suppressed by the per-worker rate limit\n";
}

void printPolicyCheck(const Json& r) {
  std::cout << (r.value("allowed", false) ? "allowed" : "denied") << " (egress "
            << (r.value("egressAllowed", false) ? "allowed" : "denied") << ", ingress "
            << (r.value("ingressAllowed", false) ? "allowed" : "denied")
            << "; with audit-mode policies: "
            << (r.value("auditAllowed", false) ? "allowed" : "denied") << ")\n";
}

void printGeneration(const Json& r) {
  std::cout << "applied generation " << num(r["appliedGeneration"])
            << " (from the agent), snapshot " << num(r["generation"]) << ", " << num(r["services"])
            << " services, " << num(r["overlay"]["nodes"]) << " nodes, " << num(r["pods"])
            << " pods\n";
}

void printTrace(const Json& r) {
  TextTable t({"STAGE", "ACTION", "DETAIL", "SRC", "DST", "VXLAN"});
  for (const Json& s : r["stages"]) {
    const Json& p = s.value("packet", Json::object());
    std::string detail = s.contains("reason") ? str(s, "reason")
                         : s.contains("to")   ? str(s, "to")
                         : s.contains("punt") ? str(s, "punt")
                                              : "";
    if (p.value("translated", false)) detail += detail.empty() ? "translated" : ", translated";
    if (s.contains("made")) detail += " (made by the stage)";
    auto endpoint = [&](const char* a, const char* port) {
      if (!p.contains(a)) return std::string("-");
      return str(p, a) + (p.contains(port) ? ":" + num(p[port]) : "");
    };
    const std::string vx = p.contains("vxlan")
                               ? str(p["vxlan"], "outerSrc") + " -> " + str(p["vxlan"], "outerDst")
                               : "-";
    t.addRow({str(s, "stage"), str(s, "action"), detail.empty() ? "-" : detail,
              endpoint("src", "sport"), endpoint("dst", "dport"), vx});
  }
  std::cout << t.render() << "verdict: " << str(r, "verdict") << "\n";
  std::set<std::string> explained;
  for (const Json& s : r["stages"])
    if (s.contains("meaning") && explained.insert(str(s, "reason")).second)
      std::cout << "  " << str(s, "reason") << ": " << str(s, "meaning") << "\n";
}

void printDns(const Json& r) {
  std::cout << str(r, "name") << " " << str(r, "type") << ": " << str(r, "outcome");
  if (r.contains("rcode")) std::cout << " (" << str(r, "rcode") << ")";
  std::cout << ", snapshot " << num(r.value("snapshot", Json())) << "\n";
  if (r.contains("note")) std::cout << "  " << str(r, "note") << "\n";
  for (const char* section : {"answer", "authority", "additional"}) {
    if (!r.contains(section) || r[section].empty()) continue;
    TextTable t({section, "TTL", "TYPE", "DATA"});
    for (const Json& rr : r[section])
      t.addRow({str(rr, "name"), num(rr.value("ttl", Json())), str(rr, "type"), str(rr, "data")});
    std::cout << t.render();
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket =
      getenv("NODEPLANE_SOCKET") ? getenv("NODEPLANE_SOCKET") : "/run/nodeplane/control.sock";
  bool json = false;
  std::vector<std::string> words;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--json")
      json = true;
    else if (a == "--socket" && i + 1 < argc)
      socket = argv[++i];
    else if (a.rfind("--socket=", 0) == 0)
      socket = a.substr(9);
    else if (a == "-h" || a == "--help" || a == "help") {
      std::cout << kUsage;
      return 0;
    } else
      words.push_back(a);
  }
  if (words.empty()) {
    std::cerr << kUsage;
    return 2;
  }

  std::string op;
  Json args = Json::object();
  void (*printer)(const Json&) = nullptr;
  const std::string& cmd = words[0];
  if (cmd == "status")
    op = "status", printer = printStatus;
  else if (cmd == "ports")
    op = "ports", printer = printPorts;
  else if (cmd == "workers")
    op = "workers", printer = printWorkers;
  else if (cmd == "drops" || cmd == "counters") {
    op = "drops", printer = printDrops;
    if (words.size() > 1 && words[1] == "--all") args["all"] = true;
  } else if (cmd == "pods")
    op = "pod.list", printer = printPods;
  else if (cmd == "nodes")
    op = "node.list", printer = printNodes;
  else if (cmd == "neighbors" || cmd == "neigh")
    op = "neighbors", printer = printNeighbors;
  else if (cmd == "services" || cmd == "svc")
    op = "service.list", printer = printServices;
  else if (cmd == "conntrack" || cmd == "ct")
    op = "conntrack", printer = printConntrack;
  else if (cmd == "flows") {
    const bool flush = words.size() >= 2 && words[1] == "flush";
    op = flush ? "flows.flush" : "flows";
    printer = flush ? nullptr : printFlows;
    auto parsed = flagsToArgs(words, flush ? 2 : 1,
                              {{"--service", "service"},
                               {"--address", "address"},
                               {"--port", "port"},
                               {"--limit", "limit"},
                               {"--backend", "backend"}},
                              {"port", "limit"});
    if (!parsed) {
      std::cerr << "npctl: " << parsed.error().message << "\n";
      return 2;
    }
    args = *parsed;
  } else if (cmd == "node" && words.size() >= 2 && (words[1] == "set" || words[1] == "delete")) {
    op = "node." + words[1];
    auto parsed = flagsToArgs(
        words, 2,
        {{"--name", "name"}, {"--ip", "ip"}, {"--pod-cidr", "podCidr"}, {"--vtep-mac", "vtepMac"}});
    if (!parsed) {
      std::cerr << "npctl: " << parsed.error().message << "\n";
      return 2;
    }
    args = *parsed;
    json = true;
  } else if (cmd == "pod" && words.size() >= 2 && (words[1] == "attach" || words[1] == "detach")) {
    op = "pod." + words[1];
    auto parsed = flagsToArgs(words, 2,
                              {{"--namespace", "namespace"},
                               {"--name", "name"},
                               {"--container-id", "containerId"},
                               {"--interface", "interface"},
                               {"--host-interface", "hostInterface"},
                               {"--devargs", "devargs"},
                               {"--netns", "netns"},
                               {"--ip", "ip"},
                               {"--mac", "mac"}});
    if (!parsed) {
      std::cerr << "npctl: " << parsed.error().message << "\n";
      return 2;
    }
    args = *parsed;
    json = true;
  } else if (cmd == "generation") {
    op = "status", printer = printGeneration;
  } else if (cmd == "trace") {
    op = "trace", printer = printTrace;
    auto parsed = flagsToArgs(words, 1,
                              {{"--from", "from"},
                               {"--src", "src"},
                               {"--dst", "dst"},
                               {"--protocol", "protocol"},
                               {"--sport", "sport"},
                               {"--dport", "dport"},
                               {"--flags", "flags"},
                               {"--payload", "payload"},
                               {"--dns-query", "dnsQuery"},
                               {"--ttl", "ttl"}},
                              {"sport", "dport", "ttl"});
    if (!parsed) {
      std::cerr << "npctl: " << parsed.error().message << "\n";
      return 2;
    }
    args = *parsed;
  } else if (cmd == "dns" && (words.size() == 2 || words.size() == 3)) {
    op = "dns", printer = printDns;
    args = {{"name", words[1]}};
    if (words.size() == 3) args["type"] = words[2];
  } else if (cmd == "policies") {
    op = "policy.list", printer = printPolicies;
  } else if (cmd == "policy" && words.size() >= 2 && words[1] == "log") {
    op = "policy.log", printer = printPolicyLog;
    auto parsed = flagsToArgs(words, 2, {{"--limit", "limit"}}, {"limit"});
    if (!parsed) {
      std::cerr << "npctl: " << parsed.error().message << "\n";
      return 2;
    }
    args = *parsed;
  } else if (cmd == "policy" && words.size() >= 2 && words[1] == "check") {
    op = "policy.check", printer = printPolicyCheck;
    auto parsed = flagsToArgs(
        words, 2,
        {{"--src", "src"}, {"--dst", "dst"}, {"--protocol", "protocol"}, {"--port", "port"}},
        {"port"});
    if (!parsed) {
      std::cerr << "npctl: " << parsed.error().message << "\n";
      return 2;
    }
    args = *parsed;
  } else if (cmd == "policy" && words.size() == 3 && words[1] == "apply") {
    op = "policy.apply";
    std::stringstream text;
    if (words[2] == "-") {
      text << std::cin.rdbuf();
    } else {
      std::ifstream in(words[2]);
      if (!in) {
        std::cerr << "npctl: policy apply: cannot read " << words[2] << "\n";
        return 2;
      }
      text << in.rdbuf();
    }
    args = Json::parse(text.str(), nullptr, false);
    if (args.is_discarded() || !args.is_object()) {
      std::cerr << "npctl: policy apply: " << words[2] << " is not a JSON object\n";
      return 2;
    }
    json = true;
  } else if (cmd == "cluster" && words.size() == 2 && words[1] == "peers") {
    op = "cluster.peers";
    json = true;
  } else if (cmd == "cluster" && words.size() == 2 && words[1] == "exports") {
    op = "cluster.exports";
    json = true;
  } else if (cmd == "cluster" && words.size() == 2 && words[1] == "imports") {
    op = "cluster.imports";
    json = true;
  } else if (cmd == "cluster" && words.size() >= 3 && words.size() <= 4 &&
             (words[1] == "export" || (words[1] == "unexport" && words.size() == 3))) {
    const auto slash = words[2].find('/');
    if (slash == std::string::npos) {
      std::cerr << "npctl: cluster " << words[1] << ": '" << words[2] << "' is not NS/NAME\n";
      return 2;
    }
    op = words[1] == "export" ? "cluster.export.set" : "cluster.export.delete";
    args = Json{{"namespace", words[2].substr(0, slash)}, {"name", words[2].substr(slash + 1)}};
    if (words.size() == 4) args["globalIp"] = words[3];
    json = true;
  } else if (cmd == "observe") {
    return nodeplane::control::npctl::observe(socket, words);
  } else if (cmd == "capture") {
    return nodeplane::control::npctl::capture(socket, words);
  } else if (cmd == "call" && words.size() >= 2) {
    op = words[1];
    if (words.size() >= 3) {
      args = Json::parse(words[2], nullptr, false);
      if (args.is_discarded() || !args.is_object()) {
        std::cerr << "npctl: call: arguments are not a JSON object\n";
        return 2;
      }
    }
    json = true;
  } else {
    std::cerr << "npctl: unknown command '" << cmd << "'\n" << kUsage;
    return 2;
  }

  ControlClient client(socket);
  auto result = client.call(op, args);
  if (!result) {
    std::cerr << "npctl: " << nodeplane::errorCodeName(result.error().code) << ": "
              << result.error().message << "\n";
    return 1;
  }
  if (json || printer == nullptr)
    std::cout << result->dump(2) << "\n";
  else
    printer(*result);
  return 0;
}
