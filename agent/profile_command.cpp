#include "agent/profile_command.h"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <thread>

#include "agent/http/http_client.h"
#include "exporters/markup.h"

namespace kvmprof {
namespace {

// A file name from a VM name an operator did not choose for file systems.
std::string file_safe(const std::string& name) {
  std::string out;
  for (char c : name) out += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ? c : '_';
  return out.empty() || out[0] == '.' ? "vm" + out : out;
}

std::string target_of(const CliOptions& o) {
  std::string t = std::string(o.format == "svg" || o.format == "folded" ? "/debug/pprof/flamegraph" : "/debug/pprof/profile") +
                  "?seconds=" + std::to_string(o.seconds) + "&format=" + o.format;
  if (!o.domain.empty()) t += "&domain=" + url_escape(o.domain);
  if (!o.uuid.empty()) t += "&uuid=" + url_escape(o.uuid);
  if (!o.mode.empty()) t += "&mode=" + url_escape(o.mode);
  return t;
}

std::string default_output(const CliOptions& o) {
  const std::string who = !o.domain.empty() ? file_safe(o.domain) : !o.uuid.empty() ? file_safe(o.uuid) : "all-vms";
  const std::string ext = o.format == "svg" ? "svg" : o.format == "folded" ? "folded" : "pb.gz";
  return "kvmprof-" + who + "." + ext;
}

std::string how_to_open(const CliOptions& o, const std::string& file) {
  if (o.format == "svg") return "open it in a browser (e.g. xdg-open " + file + ")";
  if (o.format == "folded") return "draw it with flamegraph.pl " + file + " > flame.svg, or load it in speedscope";
  return "read it with go tool pprof -top " + file + " (or -http=:8080 for the web UI)";
}

}  // namespace

int run_profile(const CliOptions& o, const ListenAddress& agent) {
  if (agent.port == 0) {
    std::cerr << "kvmprof-agent profile: the agent's listen port is 0 (picked at start); give --listen HOST:PORT as "
                 "its log says (\"serving http://...\")\n";
    return kExitUsage;
  }
  // The agent builds one profile at a time: a scrape by Parca may be under way.
  auto reply = http_get(agent, target_of(o), std::chrono::seconds(60));
  for (int retry = 0; retry < 10 && reply.ok() && reply->status == 503; ++retry) {
    std::this_thread::sleep_for(std::chrono::milliseconds(reply->retry_after == "1" ? 1000 : 500));
    reply = http_get(agent, target_of(o), std::chrono::seconds(60));
  }
  if (!reply.ok()) {
    std::cerr << "kvmprof-agent profile: " << reply.error().message()
              << "\n  is kvmprof-agent running? If it listens elsewhere than its config says, give --listen ADDR\n";
    return kExitFailure;
  }
  if (reply->status != 200) {
    std::cerr << "kvmprof-agent profile: the agent answered " << reply->status << ": " << reply->body;
    return reply->status == 400 || reply->status == 404 ? kExitUsage : kExitFailure;
  }
  const std::string file = o.output.empty() ? default_output(o) : o.output;
  if (file == "-") {
    std::cout.write(reply->body.data(), static_cast<std::streamsize>(reply->body.size()));
    return std::cout.flush() ? kExitOk : kExitFailure;
  }
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(reply->body.data(), static_cast<std::streamsize>(reply->body.size()));
  if (!out.flush()) {
    std::cerr << "kvmprof-agent profile: cannot write " << file << "\n";
    return kExitFailure;
  }
  std::cerr << "wrote " << file << " (" << reply->body.size() << " bytes); " << how_to_open(o, file) << "\n";
  return kExitOk;
}

}  // namespace kvmprof
