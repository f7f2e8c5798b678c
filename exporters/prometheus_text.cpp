#include "exporters/prometheus_text.h"

#include <prometheus/text_serializer.h>

#include <limits>

namespace kvmprof {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<ClientMetric::Label>;

MetricFamily family(std::string name, std::string help, MetricType type) {
  return MetricFamily{std::move(name), std::move(help), type, {}};
}

void add(MetricFamily& f, Labels labels, double value) {
  ClientMetric m;
  m.label = std::move(labels);
  (f.type == MetricType::Counter ? m.counter.value : m.gauge.value) = value;
  f.metric.push_back(std::move(m));
}

Labels with(Labels labels, std::string name, std::string value) {
  labels.push_back({std::move(name), std::move(value)});
  return labels;
}

// One family per metric name; kept in a fixed order so output is stable.
struct VmFamilies {
  MetricFamily info = family("kvmprof_vm_info", "One per running VM.", MetricType::Gauge);
  MetricFamily mapped = family("kvmprof_vm_threads_mapped",
                               "1 when every vCPU thread of the VM was found, 0 when not (see logs).",
                               MetricType::Gauge);
  MetricFamily cpu = family("kvmprof_vcpu_cpu_seconds_total",
                            "vCPU thread CPU time by mode (guest, host_kernel, host_user), or only "
                            "mode=\"all\" where the host gives no trustworthy split.",
                            MetricType::Counter);
  MetricFamily wait = family("kvmprof_vcpu_wait_seconds_total",
                             "Time the vCPU thread was runnable but waited for a host CPU.",
                             MetricType::Counter);
  MetricFamily emulator = family("kvmprof_vm_emulator_cpu_seconds_total",
                                 "CPU time of the VM's non-vCPU QEMU threads, host only.",
                                 MetricType::Counter);
  MetricFamily exits = family("kvmprof_vcpu_exits_total",
                              "VM exits from KVM's statistics; reason=\"all\" is the total, the "
                              "other reasons overlap it.",
                              MetricType::Counter);
  MetricFamily events = family("kvmprof_vcpu_events_total",
                               "perf event counts per vCPU thread, scaled for multiplexing.",
                               MetricType::Counter);
  MetricFamily enabled = family("kvmprof_vcpu_event_enabled_seconds_total",
                                "Time the event's counters were enabled (per event and mode).", MetricType::Counter);
  MetricFamily running = family("kvmprof_vcpu_event_running_seconds_total",
                                "Time the event's counters were on the PMU (< enabled: multiplexed; on hybrid "
                                "CPUs the core types' running times add up).",
                                MetricType::Counter);
  MetricFamily vm_events = family("kvmprof_vm_events_total",
                                  "perf counts summed over the VM's vCPUs (policies with aggregation per_vm).",
                                  MetricType::Counter);
  MetricFamily samples = family("kvmprof_vcpu_samples_total",
                                "Samples taken on the vCPU thread by mode, as each sample's misc bits say: guest_kernel, "
                                "guest_user (the guest ran; guest IP, no callchain), host_kernel (KVM exits and "
                                "emulation), host_user (QEMU), hypervisor, unknown.",
                                MetricType::Counter);
  MetricFamily emulator_samples = family("kvmprof_vm_emulator_samples_total",
                                         "Samples taken on the VM's non-vCPU QEMU threads (sampling threads: all), by mode.",
                                         MetricType::Counter);
  MetricFamily lost = family("kvmprof_samples_lost_total",
                             "Samples lost: ring_full (the ring had no room: PERF_RECORD_LOST), kernel_dropped "
                             "(PERF_RECORD_LOST_SAMPLES), corrupt (records that did not decode and reads cut short: events, not samples).",
                             MetricType::Counter);
  MetricFamily throttles = family("kvmprof_sample_throttles_total",
                                  "Times the kernel throttled the VM's sampling (kernel.perf_event_max_sample_rate).",
                                  MetricType::Counter);
};

void render_vcpu(VmFamilies& f, const Labels& vm, const VcpuSample& vcpu) {
  Labels labels = with(vm, "vcpu", std::to_string(vcpu.index));
  for (const auto& m : vcpu.cpu) add(f.cpu, with(labels, "mode", m.mode), m.seconds);
  if (vcpu.wait_seconds) add(f.wait, labels, *vcpu.wait_seconds);
  for (const auto& [reason, count] : vcpu.exits) {
    add(f.exits, with(labels, "reason", reason), static_cast<double>(count));
  }
  for (const auto& e : vcpu.events) {  // (event, mode) makes each series unique: a split event has two
    Labels event = with(with(labels, "event", e.event), "mode", e.mode);
    add(f.events, event, e.value);
    if (e.enabled_seconds) add(f.enabled, event, *e.enabled_seconds);
    if (e.running_seconds) add(f.running, event, *e.running_seconds);
  }
  for (const auto& sv : vcpu.samples) {
    add(f.samples, with(with(labels, "event", sv.event), "mode", sv.mode), static_cast<double>(sv.count));
  }
}

void render_vm(VmFamilies& f, const VmSample& vm) {
  Labels labels{{"domain", vm.name}, {"uuid", vm.uuid}};
  add(f.info, with(labels, "policy", vm.policy), 1);
  for (const auto& e : vm.events) add(f.vm_events, with(with(labels, "event", e.event), "mode", e.mode), e.value);
  add(f.mapped, labels, vm.mapped ? 1 : 0);
  for (const auto& m : vm.emulator_cpu) add(f.emulator, with(labels, "mode", m.mode), m.seconds);
  for (const auto& vcpu : vm.vcpus) render_vcpu(f, labels, vcpu);
  for (const auto& sv : vm.emulator_samples) {
    add(f.emulator_samples, with(with(labels, "event", sv.event), "mode", sv.mode), static_cast<double>(sv.count));
  }
  for (const auto& [reason, count] : vm.samples_lost) add(f.lost, with(labels, "reason", reason), static_cast<double>(count));
  if (vm.sample_throttles) add(f.throttles, labels, static_cast<double>(*vm.sample_throttles));
}

template <class Map>
MetricFamily error_counter(std::string name, std::string help, std::string label1,
                           std::string label2, const Map& counts) {
  MetricFamily f = family(std::move(name), std::move(help), MetricType::Counter);
  for (const auto& [key, count] : counts) {
    add(f, {{label1, key.first}, {label2, key.second}}, static_cast<double>(count));
  }
  return f;
}

MetricFamily histogram(const HistogramData& h) {
  MetricFamily f = family("kvmprof_collection_duration_seconds",
                          "Duration of one collection cycle.", MetricType::Histogram);
  ClientMetric m;
  m.histogram.sample_count = h.count;
  m.histogram.sample_sum = h.sum;
  for (size_t i = 0; i < h.bounds.size(); ++i) m.histogram.bucket.push_back({h.counts[i], h.bounds[i]});
  m.histogram.bucket.push_back({h.count, std::numeric_limits<double>::infinity()});
  f.metric.push_back(std::move(m));
  return f;
}

void render_health(std::vector<MetricFamily>& out, const Snapshot& s, const BuildInfo& build) {
  auto gauge = [&](std::string name, std::string help, double value, Labels labels = {}) {
    out.push_back(family(std::move(name), std::move(help), MetricType::Gauge));
    add(out.back(), std::move(labels), value);
  };
  gauge("kvmprof_libvirt_up", "1 when the libvirt connection works.", s.libvirt_up ? 1 : 0);
  gauge("kvmprof_vms", "Running VMs known to the agent.", static_cast<double>(s.vms.size()));
  gauge("kvmprof_last_collection_timestamp_seconds", "End of the last complete collection cycle.",
        s.timestamp_seconds);
  gauge("kvmprof_config_last_reload_successful", "1 when the last config (re)load succeeded.",
        s.config_reload_ok ? 1 : 0);
  gauge("kvmprof_config_last_reload_success_timestamp_seconds", "Time of the last good (re)load.",
        s.config_reload_success_timestamp);
  gauge("kvmprof_sample_ring_bytes", "Locked memory of every sampling ring buffer (perf_event_mlock_kb).",
        static_cast<double>(s.sample_ring_bytes));
  gauge("kvmprof_build_info", "Version and git revision of this agent.", 1,
        {{"version", build.version}, {"revision", build.revision}});
  out.push_back(family("kvmprof_event_info",
                       "One per configured event (use=count) and sampling event (use=sample): what the policy "
                       "engine decided on this host, why, and the attrs opened.",
                       MetricType::Gauge));
  for (const auto& e : s.event_info) {
    add(out.back(), {{"use", e.use}, {"event", e.event}, {"policy", e.policy}, {"guest", e.guest},
                     {"precise", std::to_string(e.precise)}, {"status", e.status},
                     {"counts", e.semantics}, {"reason", e.reason}, {"attrs", e.attrs}}, 1);
  }
  out.push_back(family("kvmprof_limit_action_info",
                       "What a host limit took from a policy: action per_vm (aggregated instead of per "
                       "vCPU) or dropped (the event is not counted).",
                       MetricType::Gauge));
  for (const auto& a : s.limit_actions) {
    add(out.back(), {{"policy", a.policy}, {"action", a.action}, {"event", a.event}}, 1);
  }
  out.push_back(family("kvmprof_source_up",
                       "1 when a measurement source is live on this host; 0 when it is not "
                       "(its series are then absent, not zero).",
                       MetricType::Gauge));
  for (const auto& src : s.sources) add(out.back(), {{"source", src.source}}, src.up ? 1 : 0);
}

}  // namespace

void render_profile_store(std::vector<MetricFamily>& out, const ProfileStoreStats& p) {
  out.push_back(family("kvmprof_profile_samples", "Samples kept for profiles (profiles.max_samples).", MetricType::Gauge));
  add(out.back(), {}, static_cast<double>(p.samples));
  out.push_back(family("kvmprof_profile_stacks", "Distinct callchains kept for profiles (profiles.max_stacks).",
                       MetricType::Gauge));
  add(out.back(), {}, static_cast<double>(p.stacks));
  out.push_back(family("kvmprof_profile_store_bytes",
                       "Estimated memory of what profiles keep, by part: samples, stacks, symbols (profiles.symbol_cache).",
                       MetricType::Gauge));
  for (const auto& [part, bytes] : p.bytes) add(out.back(), {{"part", part}}, static_cast<double>(bytes));
  out.push_back(family("kvmprof_profile_samples_dropped_total",
                       "Samples dropped before their window ended because a profiles bound was reached, by bound.",
                       MetricType::Counter));
  for (const char* reason : {"max_samples", "max_stacks"}) {
    auto it = p.dropped.find(reason);
    add(out.back(), {{"reason", reason}}, static_cast<double>(it == p.dropped.end() ? 0 : it->second));
  }
}

std::vector<MetricFamily> render(const Snapshot& snapshot, const BuildInfo& build) {
  VmFamilies f;
  for (const auto& vm : snapshot.vms) render_vm(f, vm);
  std::vector<MetricFamily> out{f.info,    f.mapped,  f.cpu,       f.wait,    f.emulator,         f.exits,
                                f.events,  f.enabled, f.running,   f.vm_events, f.samples, f.emulator_samples,
                                f.lost,    f.throttles};
  render_health(out, snapshot, build);
  out.push_back(error_counter("kvmprof_perf_open_errors_total", "Failed perf_event_open calls.",
                              "event", "errno", snapshot.perf_open_errors));
  out.push_back(error_counter("kvmprof_perf_open_fallbacks_total",
                              "Steps the open ladder took for an event (attr_size, no_clockid, no_sample_identifier, "
                              "drop_exclude_bits, set_exclude_guest, lower_precise, raise_nofile).",
                              "event", "step", snapshot.open_fallbacks));
  out.push_back(error_counter("kvmprof_read_errors_total",
                              "Failed reads (a thread that exited mid-cycle, a refused read).",
                              "source", "errno", snapshot.read_errors));
  MetricFamily discovery = family("kvmprof_discovery_errors_total",
                                  "VMs or threads that could not be discovered or mapped.",
                                  MetricType::Counter);
  for (const auto& [reason, count] : snapshot.discovery_errors) {
    add(discovery, {{"reason", reason}}, static_cast<double>(count));
  }
  out.push_back(std::move(discovery));
  out.push_back(histogram(snapshot.collection_duration));
  render_profile_store(out, snapshot.profile_store);
  return out;
}

std::string prometheus_text(const Snapshot& snapshot, const BuildInfo& build) {
  return prometheus::TextSerializer().Serialize(render(snapshot, build));
}

}  // namespace kvmprof
