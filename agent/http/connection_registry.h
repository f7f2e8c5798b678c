#pragma once
// ConnectionRegistry: the HTTP server's open connections, oldest first, with the caps per
// client address and in total. At a cap the oldest connection that is idle (waiting for or
// reading a request) is chosen to close, else the oldest of all (a client that reads its
// answers too slowly keeps a connection busy): a new scrape always gets in while idle, slow
// or hostile clients hold connections. Shared by the server's threads: locked.
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
  // within the caps (already unregistered), or null.
  std::shared_ptr<Conn> add(const std::shared_ptr<Conn>& conn, const std::string& client) {
    std::lock_guard lock(mu_);
    std::shared_ptr<Conn> victim;
    const std::string* of = per_client_[client] >= max_per_client_ ? &client : nullptr;
    if (of || order_.size() >= max_total_) {
      victim = evict_oldest(of, true);
      if (!victim) victim = evict_oldest(of, false);
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

  // The oldest connection still alive (only idle ones if `idle_only`), of `client` if given;
  // unregistered.
  std::shared_ptr<Conn> evict_oldest(const std::string* client, bool idle_only) {
    for (auto it = order_.begin(); it != order_.end(); ++it) {
      if ((idle_only && !it->idle) || (client && it->client != *client)) continue;
      auto conn = it->conn.lock();
      erase(it);
      if (conn) return conn;
      return evict_oldest(client, idle_only);  // it was already on its way out
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
