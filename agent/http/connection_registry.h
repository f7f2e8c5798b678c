#pragma once
// ConnectionRegistry: the HTTP server's open connections, oldest first, with the caps per
// client address and in total. At a cap the oldest connection that is idle (waiting for or
// reading a request, not answering one) is chosen to close, so a new scrape always gets in
// while idle or slow clients hold connections. Shared by the server's threads: locked.
#include <cstddef>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace kvmprof {

template <class Conn>
class ConnectionRegistry {
 public:
  ConnectionRegistry(size_t max_total, size_t max_per_client) : max_total_(max_total), max_per_client_(max_per_client) {}

  // Registers `conn` (idle until told otherwise). Returns the connection to close to stay
  // within the caps (already unregistered), `conn` itself when no idle one can make room (it
  // is then not registered), or null.
  std::shared_ptr<Conn> add(const std::shared_ptr<Conn>& conn, const std::string& client) {
    std::lock_guard lock(mu_);
    std::shared_ptr<Conn> victim;
    if (per_client_[client] >= max_per_client_) {
      victim = evict_oldest_idle(&client);
      if (!victim) return conn;
    } else if (order_.size() >= max_total_) {
      victim = evict_oldest_idle(nullptr);
      if (!victim) return conn;
    }
    order_.push_back({conn.get(), conn, client, true});
    index_[conn.get()] = std::prev(order_.end());
    ++per_client_[client];
    return victim;
  }

  void set_idle(const Conn* conn, bool idle) {
    std::lock_guard lock(mu_);
    if (auto it = index_.find(conn); it != index_.end()) it->second->idle = idle;
  }

  void remove(const Conn* conn) {
    std::lock_guard lock(mu_);
    if (auto it = index_.find(conn); it != index_.end()) erase(it->second);
  }

  size_t size() const {
    std::lock_guard lock(mu_);
    return order_.size();
  }

 private:
  struct Entry {
    const Conn* key;
    std::weak_ptr<Conn> conn;
    std::string client;
    bool idle;
  };
  using Iterator = typename std::list<Entry>::iterator;

  // The oldest idle connection still alive, of `client` if given; unregistered.
  std::shared_ptr<Conn> evict_oldest_idle(const std::string* client) {
    for (auto it = order_.begin(); it != order_.end(); ++it) {
      if (!it->idle || (client && it->client != *client)) continue;
      auto conn = it->conn.lock();
      erase(it);
      if (conn) return conn;
      return evict_oldest_idle(client);  // it was already on its way out
    }
    return nullptr;
  }

  void erase(Iterator it) {
    if (--per_client_[it->client] == 0) per_client_.erase(it->client);
    index_.erase(it->key);
    order_.erase(it);
  }

  const size_t max_total_;
  const size_t max_per_client_;
  mutable std::mutex mu_;
  std::list<Entry> order_;  // oldest first
  std::map<const Conn*, Iterator> index_;
  std::map<std::string, size_t> per_client_;
};

}  // namespace kvmprof
