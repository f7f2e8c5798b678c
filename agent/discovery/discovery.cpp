#include "agent/discovery/discovery.h"

#include "agent/system/log.h"

namespace kvmprof {

struct Discovery::Shared {
  Shared(Hypervisor& h, std::string u, Callbacks c) : hypervisor(h), uri(std::move(u)), callbacks(std::move(c)) {}

  Hypervisor& hypervisor;
  const std::string uri;
  const Callbacks callbacks;
  std::mutex mu;
  std::condition_variable wake;
  bool stopping = false;
  bool ask = false;
  bool done = false;  // the thread has left run()
  std::chrono::milliseconds interval{5000}, max_backoff{30000};
  std::optional<std::vector<std::string>> new_uris;
};

namespace {

using Clock = Discovery::Clock;
constexpr std::chrono::milliseconds kFirstBackoff{1000};

// The thread: one libvirt call per step, never under the lock.
class Worker {
 public:
  explicit Worker(std::shared_ptr<Discovery::Shared> s) : s_(std::move(s)) {}

  void run() {
    while (wait_for_turn()) {
      if (!s_->hypervisor.connected() && !connect()) continue;
      list();
    }
    std::lock_guard lock(s_->mu);
    s_->done = true;
    s_->wake.notify_all();
  }

  // Sleeps until the next poll (or reconnect), a request, or stop; applies new settings.
  bool wait_for_turn() {
    std::optional<std::vector<std::string>> uris;
    {
      std::unique_lock lock(s_->mu);
      s_->wake.wait_until(lock, next_, [&] { return s_->stopping || s_->ask; });
      s_->ask = false;
      if (s_->stopping) return false;
      uris = std::exchange(s_->new_uris, std::nullopt);
    }
    if (uris) s_->hypervisor.set_metadata_uris(std::move(*uris));  // never under the lock
    return true;
  }

  template <class Call>
  auto call(Call&& c) {
    s_->callbacks.call_started();
    return c();
  }

  bool connect() {
    s_->hypervisor.disconnect();  // what is left of a connection libvirt closed
    auto connected = call([&] { return s_->hypervisor.connect(); });
    if (stopped()) return false;
    if (connected.ok()) {
      log_info("connected to " + s_->uri);
      backoff_ = kFirstBackoff;
      return true;
    }
    answer(nullptr, connected.error().message());
    log_warning(connected.error().message() + "; retrying in " + std::to_string(backoff_.count() / 1000) + " s");
    next_ = Clock::now() + backoff_;
    backoff_ = std::min(backoff_ * 2, setting(&Discovery::Shared::max_backoff));
    return false;
  }

  void list() {
    auto domains = call([&] { return s_->hypervisor.running_domains(); });
    if (stopped()) return;
    next_ = Clock::now() + setting(&Discovery::Shared::interval);
    if (domains.ok()) return answer(std::make_shared<const std::vector<DomainRecord>>(std::move(*domains)), "");
    log_warning("lost libvirt connection: " + domains.error().message() + "; still measuring the known VMs");
    s_->hypervisor.disconnect();
    next_ = Clock::now();  // reconnect at once, then with backoff
    answer(nullptr, domains.error().message());
  }

  std::chrono::milliseconds setting(std::chrono::milliseconds Discovery::Shared::*field) {
    std::lock_guard lock(s_->mu);
    return (*s_).*field;
  }

  void answer(Discovery::Domains domains, const std::string& error) { s_->callbacks.answered(std::move(domains), error); }

  bool stopped() {
    std::lock_guard lock(s_->mu);
    return s_->stopping;
  }

  std::shared_ptr<Discovery::Shared> s_;
  Clock::time_point next_{};
  std::chrono::milliseconds backoff_ = kFirstBackoff;
};

}  // namespace

Discovery::Discovery(Hypervisor& hypervisor, std::string uri, Callbacks callbacks)
    : shared_(std::make_shared<Shared>(hypervisor, std::move(uri), std::move(callbacks))) {}

Discovery::~Discovery() { stop(kStopWait); }

void Discovery::start(std::chrono::milliseconds interval, std::chrono::milliseconds max_backoff,
                      std::vector<std::string> metadata_uris) {
  set_interval(interval, max_backoff);
  set_metadata_uris(std::move(metadata_uris));
  // libvirt's own event thread reports changes: ask again at once (a lost connection too).
  shared_->hypervisor.set_events({[s = shared_](const std::string&) {
                                    std::lock_guard lock(s->mu);
                                    s->ask = true;
                                    s->wake.notify_all();
                                  }});
  thread_ = std::thread([s = shared_] { Worker(s).run(); });
}

void Discovery::set_interval(std::chrono::milliseconds interval, std::chrono::milliseconds max_backoff) {
  std::lock_guard lock(shared_->mu);
  shared_->interval = interval;
  shared_->max_backoff = max_backoff;
}

void Discovery::set_metadata_uris(std::vector<std::string> uris) {
  std::lock_guard lock(shared_->mu);
  shared_->new_uris = std::move(uris);
  shared_->ask = true;
  shared_->wake.notify_all();
}

bool Discovery::stop(std::chrono::milliseconds wait) {
  if (!thread_.joinable()) return true;
  std::unique_lock lock(shared_->mu);
  shared_->stopping = true;
  shared_->wake.notify_all();
  if (!shared_->wake.wait_for(lock, wait, [&] { return shared_->done; })) {
    log_warning("libvirt has not answered a call for a while; leaving its thread behind to stop now");
    lock.unlock();
    thread_.detach();
    return false;
  }
  lock.unlock();
  thread_.join();
  shared_->hypervisor.disconnect();
  return true;
}

}  // namespace kvmprof
