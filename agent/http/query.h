#pragma once
// The query of a request URL ("seconds=30&domain=web%201"): application/x-www-form-urlencoded
// as browsers and Go's net/url write it. Strict, because an operator's typo should be an error
// and not a silently different profile: a key given twice, a bad %-escape or too many keys is
// an error.
#include <map>
#include <string>
#include <string_view>

#include "agent/system/result.h"

namespace kvmprof {

inline constexpr size_t kMaxQueryKeys = 16;

Result<std::map<std::string, std::string>> parse_query(std::string_view query);

}  // namespace kvmprof
