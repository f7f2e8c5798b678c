#include "agent/http/profile_page.h"

#include <charconv>
#include <set>

#include "agent/http/gzip.h"
#include "agent/http/query.h"
#include "agent/profile/profile_builder.h"
#include "exporters/flamegraph.h"
#include "exporters/folded.h"
#include "exporters/pprof.h"

namespace kvmprof {
namespace {

const std::set<std::string> kKeys{"seconds", "domain", "uuid", "mode", "format"};
constexpr int64_t kDefaultSeconds = 30;  // as Go's net/http/pprof

HttpResponse bad(unsigned status, std::string why) { return text_response(status, std::move(why) + "\n"); }

// "guest,host_kernel" -> the modes: the metric labels' names, and host / guest for both halves.
std::optional<std::set<SampleMode>> parse_modes(std::string_view text) {
  constexpr SampleMode kAll[] = {SampleMode::kHostKernel, SampleMode::kHostUser, SampleMode::kHypervisor,
                                 SampleMode::kGuestKernel, SampleMode::kGuestUser};
  std::set<SampleMode> out;
  while (!text.empty()) {
    auto name = text.substr(0, text.find(','));
    text.remove_prefix(std::min(text.size(), name.size() + 1));
    bool known = false;
    for (SampleMode m : kAll) {
      const std::string_view label = to_string(m);
      if (label == name || (name == "host" && label.starts_with("host_")) || (name == "guest" && is_guest(m))) {
        out.insert(m);
        known = true;
      }
    }
    if (!known) return std::nullopt;
  }
  return out;
}

// The VMs of the last snapshot; none before the first.
const std::vector<VmSample>& vms_of(const Snapshot* snapshot) {
  static const std::vector<VmSample> none;
  return snapshot ? snapshot->vms : none;
}

struct Request {
  int64_t seconds = kDefaultSeconds;
  std::string format;
  std::set<SampleMode> modes;
  std::set<std::string> uuids;  // empty: every VM
  std::string who = "all VMs";  // for the flame graph's title
};

// The request's parameters checked against the VMs of the last snapshot; an error response
// when they are wrong.
std::variant<Request, HttpResponse> parse(const HttpRequest& http, std::string_view format, int64_t max_seconds,
                                          const Snapshot* snapshot) {
  auto query = parse_query(http.query);
  if (!query.ok()) return bad(400, query.error().message());
  Request r;
  r.format = format;
  for (const auto& [key, value] : *query) {
    if (!kKeys.contains(key)) return bad(400, "unknown parameter '" + key + "' (seconds, domain, uuid, mode, format)");
  }
  auto get = [&](const char* key) { return query->contains(key) ? &query->at(key) : nullptr; };
  if (const std::string* s = get("seconds")) {
    auto [p, ec] = std::from_chars(s->data(), s->data() + s->size(), r.seconds);
    if (ec != std::errc() || p != s->data() + s->size() || r.seconds < 1 || r.seconds > max_seconds) {
      return bad(400, "seconds must be a whole number from 1 to " + std::to_string(max_seconds) +
                          " (the agent keeps the samples of the last " + std::to_string(max_seconds) +
                          " s: profiles.window in agent.yaml)");
    }
  }
  if (const std::string* f = get("format")) {
    if (*f != "pprof" && *f != "folded" && *f != "svg") return bad(400, "format must be pprof, folded or svg");
    r.format = *f;
  }
  if (const std::string* m = get("mode")) {
    auto modes = parse_modes(*m);
    if (!modes || modes->empty()) {
      return bad(400, "mode must be a comma-separated list of host, guest, host_kernel, host_user, guest_kernel, "
                      "guest_user, hypervisor");
    }
    r.modes = *modes;
  }
  const std::string* domain = get("domain");
  const std::string* uuid = get("uuid");
  if (!domain && !uuid) return r;
  for (const auto& vm : vms_of(snapshot)) {
    if ((!domain || vm.name == *domain) && (!uuid || vm.uuid == *uuid)) r.uuids.insert(vm.uuid);
  }
  if (r.uuids.empty()) {
    return bad(404, std::string("no running VM ") + (domain ? "named '" + *domain + "'" : "") +
                        (domain && uuid ? " with " : "") + (uuid ? "UUID '" + *uuid + "'" : "") +
                        " (see kvmprof_vm_info in /metrics)");
  }
  r.who = domain ? "VM '" + *domain + "'" : "VM " + *uuid;
  return r;
}

HttpResponse render(const Profile& profile, const Request& r, bool accepts_gzip) {
  HttpResponse out;
  if (r.format == "pprof") {
    out.content_type = "application/octet-stream";  // and the body is gzip itself, as Go's net/http/pprof sends it
    out.headers = {{"Content-Disposition", "attachment; filename=\"profile\""}, {"X-Content-Type-Options", "nosniff"}};
    out.body = std::make_shared<const std::string>(gzip(encode_pprof(profile)));
    return out;
  }
  std::string text;
  if (r.format == "folded") {
    text = folded(profile);
  } else {
    int64_t samples = 0;
    for (const auto& s : profile.samples) samples += s.count;
    FlameGraphOptions options;
    options.title = "kvmprof: " + r.who + ", last " + std::to_string(r.seconds) + " s, " +
                    with_commas(samples) + (samples == 1 ? " sample" : " samples");
    for (const auto& c : profile.comments) options.subtitle += (options.subtitle.empty() ? "" : "; ") + c;
    text = flamegraph_svg(profile, options);
    out.content_type = "image/svg+xml";
  }
  out.gzipped = accepts_gzip;
  out.body = std::make_shared<const std::string>(accepts_gzip ? gzip(text) : std::move(text));
  return out;
}

// An empty profile says why: the VM is not sampled, no sample has the modes asked for, or its
// threads did not run.
std::string why_empty(const Request& r, const Snapshot* snapshot) {
  const std::string none = "no samples of " + r.who + " in the last " + std::to_string(r.seconds) + " s";
  bool sampled = false;
  for (const auto& vm : vms_of(snapshot)) {
    if ((r.uuids.empty() || r.uuids.contains(vm.uuid)) && !vm.samples_lost.empty()) sampled = true;
  }
  if (!sampled) return none + ": no policy samples it (add a sampling: block to its policy)";
  if (!r.modes.empty()) return none + " in the modes asked for";
  return none + ": its threads did not run";
}

}  // namespace

HttpResponse ProfilePage::serve(const HttpRequest& request, std::string_view format) {
  const int64_t max_seconds = store_.window_length().count();
  auto snapshot = snapshots_.latest();
  auto parsed = parse(request, format, max_seconds, snapshot.get());
  if (auto* error = std::get_if<HttpResponse>(&parsed)) return std::move(*error);
  const Request& r = std::get<Request>(parsed);
  // The snapshot lags a stop by up to a cycle; the store forgets a stopped VM's samples at once.
  for (const auto& vm : vms_of(snapshot.get())) {
    if (r.uuids.contains(vm.uuid) && !vm.samples_lost.empty() && !store_.has_vm(vm.uuid)) {
      return bad(404, r.who + " is no longer sampled: it stopped, or a reload took its sampling away (its samples "
                          "left with it)");
    }
  }
  if (building_.exchange(true)) {
    HttpResponse busy = bad(503, "another profile is being built; try again in a second");
    busy.headers = {{"Retry-After", "1"}};
    return busy;
  }
  struct Done {
    std::atomic<bool>& flag;
    ~Done() { flag = false; }
  } done{building_};
  ProfileScope scope;
  scope.seconds = r.seconds;
  scope.end_mono_ns = monotonic_ns();
  scope.end_unix_ns = static_cast<int64_t>(clock_ns(CLOCK_REALTIME));
  scope.modes = r.modes;
  for (const auto& vm : vms_of(snapshot.get())) scope.names[vm.uuid] = vm.name;
  const uint64_t span = static_cast<uint64_t>(r.seconds) * 1'000'000'000;
  const uint64_t since = scope.end_mono_ns > span ? scope.end_mono_ns - span : 0;
  ProfileWindow window = store_.window(since, r.uuids);
  Profile profile = build_profile(window, scope, symbolizer_, guests_);
  if (profile.samples.empty()) profile.comments.push_back(why_empty(r, snapshot.get()));
  return render(profile, r, request.accepts_gzip);
}


}  // namespace kvmprof
