// Basic auth as the exporter toolkit checks it: bcrypt through libxcrypt, verdicts cached.
#include "agent/http/basic_auth.h"

#include <gtest/gtest.h>

#include "tests/fuzz/basic_auth_input.h"

using namespace kvmprof;

namespace {

// bcrypt (cost 4) of "correct horse", from Python's crypt.crypt (libxcrypt).
const std::string kHash = "$2b$04$pPC/Y4cfkl2CkpHArzmpeePf3zCnJ1EUYHZFgXuAK9fv2YdTpgaIO";

std::string header(const std::string& user_colon_password) {
  return "Basic " + kvmprof::testing::fuzz_base64(user_colon_password);
}

}  // namespace

TEST(BasicAuth, ParsesTheAuthorizationHeader) {
  EXPECT_EQ(parse_basic_auth(header("alice:pa:ss")), (std::pair<std::string, std::string>{"alice", "pa:ss"}));
  EXPECT_EQ(parse_basic_auth("basic YTpi"), (std::pair<std::string, std::string>{"a", "b"}));  // scheme in any case
  EXPECT_EQ(parse_basic_auth(header("a:")), (std::pair<std::string, std::string>{"a", ""}));
  EXPECT_FALSE(parse_basic_auth(""));
  EXPECT_FALSE(parse_basic_auth("Bearer YTpi"));
  EXPECT_FALSE(parse_basic_auth("Basic "));
  EXPECT_FALSE(parse_basic_auth("Basic YTpi="));    // length not a multiple of 4
  EXPECT_FALSE(parse_basic_auth("Basic YT!i"));     // not base64
  EXPECT_FALSE(parse_basic_auth("Basic YWxpY2U="));  // "alice": no colon
  EXPECT_FALSE(parse_basic_auth("Basic ====A==="));
}

TEST(BasicAuth, ChecksPasswordsAgainstTheirBcryptHash) {
  BasicAuth auth({{"alice", kHash}});
  ASSERT_TRUE(auth.enabled());
  EXPECT_TRUE(auth.verify(header("alice:correct horse")));
  EXPECT_FALSE(auth.verify(header("alice:correct horsf")));
  EXPECT_FALSE(auth.verify(header("bob:correct horse")));  // an unknown user, checked against a real hash
  EXPECT_FALSE(auth.verify(header("alice:")));
  EXPECT_FALSE(auth.verify("Basic !!!!"));
  EXPECT_FALSE(BasicAuth({}).enabled());
}

TEST(BasicAuth, AcceptedCredentialsAreRememberedWrongOnesAreNot) {
  BasicAuth auth({{"alice", kHash}});
  EXPECT_EQ(auth.cached(header("alice:correct horse")), std::nullopt);
  EXPECT_EQ(auth.cached(""), false);
  EXPECT_EQ(auth.cached("Basic x"), false);
  EXPECT_TRUE(auth.verify(header("alice:correct horse")));
  EXPECT_FALSE(auth.verify(header("alice:wrong")));
  EXPECT_EQ(auth.cached(header("alice:correct horse")), true);
  EXPECT_EQ(auth.cached(header("alice:wrong")), std::nullopt);  // guesses cannot crowd out the good verdict
  for (int i = 0; i < 100; ++i) auth.verify(header("alice:guess" + std::to_string(i)));
  EXPECT_EQ(auth.cached(header("alice:correct horse")), true);
}

TEST(BasicAuth, AReloadKeepsWhatWasAcceptedForUnchangedHashes) {
  BasicAuth before({{"alice", kHash}, {"bob", kHash}});
  before.verify(header("alice:correct horse"));
  before.verify(header("bob:correct horse"));
  const std::string other = "$2b$04$pPC/Y4cfkl2CkpHArzmpeePf3zCnJ1EUYHZFgXuAK9fv2YdTpgaIP";
  BasicAuth after({{"alice", kHash}, {"bob", other}}, &before);
  EXPECT_EQ(after.cached(header("alice:correct horse")), true);
  EXPECT_EQ(after.cached(header("bob:correct horse")), std::nullopt);  // bob's password changed: hash again
}

TEST(BasicAuth, ANulByteIsRefused) {
  // crypt(3) stops at NUL: "correct horse\0anything" would match (Go's bcrypt refuses it).
  BasicAuth auth({{"alice", kHash}});
  EXPECT_FALSE(auth.verify(header(std::string("alice:correct horse\0anything", 28))));
  EXPECT_FALSE(parse_basic_auth(header(std::string("al\0ice:x", 8))));
}
