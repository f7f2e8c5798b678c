#pragma once
// gzip (RFC 1952) through zlib, for responses to clients that accept it (Prometheus does).
#include <string>
#include <string_view>

namespace kvmprof {

std::string gzip(std::string_view data);

}  // namespace kvmprof
