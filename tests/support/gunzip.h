#pragma once
// gunzip for tests that check what the agent gzipped (scrapes, profiles).
#include <zlib.h>

#include <string>

namespace kvmprof {

inline std::string gunzip(const std::string& data) {
  z_stream z{};
  inflateInit2(&z, 16 + MAX_WBITS);  // gzip, not zlib
  std::string out;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  int rc = Z_OK;
  while (rc == Z_OK) {
    out.resize(out.size() + 65536);
    z.next_out = reinterpret_cast<Bytef*>(out.data() + z.total_out);
    z.avail_out = 65536;
    rc = inflate(&z, Z_NO_FLUSH);
  }
  out.resize(z.total_out);
  inflateEnd(&z);
  return out;
}

}  // namespace kvmprof
