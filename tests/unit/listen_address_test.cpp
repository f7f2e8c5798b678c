#include "policy/listen_address.h"

#include <gtest/gtest.h>

using namespace kvmprof;

namespace {

ListenAddress ok(const char* text) {
  auto parsed = parse_listen(text);
  EXPECT_TRUE(std::holds_alternative<ListenAddress>(parsed)) << text << ": " << std::get<std::string>(parsed);
  return std::holds_alternative<ListenAddress>(parsed) ? std::get<ListenAddress>(parsed) : ListenAddress{};
}

std::string error(const char* text) {
  auto parsed = parse_listen(text);
  EXPECT_TRUE(std::holds_alternative<std::string>(parsed)) << text << " was accepted";
  return std::holds_alternative<std::string>(parsed) ? std::get<std::string>(parsed) : "";
}

}  // namespace

TEST(ListenAddress, AcceptsEveryAddressIpv4Ipv6AndLocalhost) {
  EXPECT_EQ(ok(":9477").host, "");
  EXPECT_EQ(ok(":9477").port, 9477);
  EXPECT_EQ(ok("127.0.0.1:0").text(), "127.0.0.1:0");
  EXPECT_TRUE(ok("[::1]:0").ipv6);
  EXPECT_EQ(ok("[::1]:0").host, "::1");
  EXPECT_EQ(ok("[::]:9477").text(), "[::]:9477");
  EXPECT_EQ(ok("localhost:9477").host, "127.0.0.1");
  EXPECT_EQ(ok("0.0.0.0:65535").port, 65535);
}

TEST(ListenAddress, SaysWhatIsWrong) {
  EXPECT_NE(error("9477").find("[address]:port"), std::string::npos);
  EXPECT_NE(error(":65536").find("0 to 65535"), std::string::npos);
  EXPECT_NE(error(":").find("0 to 65535"), std::string::npos);
  EXPECT_NE(error(":-1").find("0 to 65535"), std::string::npos);
  EXPECT_NE(error("::1:9477").find("brackets"), std::string::npos);
  EXPECT_NE(error("[::g]:9477").find("not an IPv6 address"), std::string::npos);
  EXPECT_NE(error("[127.0.0.1]:9477").find("not an IPv6 address"), std::string::npos);
  EXPECT_NE(error("example.org:9477").find("not an IP address"), std::string::npos);
  EXPECT_NE(error("300.1.1.1:9477").find("not an IP address"), std::string::npos);
  EXPECT_NE(error("[]:9477").find("not an IPv6 address"), std::string::npos);
  EXPECT_NE(error("[::1:9477").find("closing ']'"), std::string::npos);
}
