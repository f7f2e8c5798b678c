// The config file is read only when it is a regular file below the size bound, and reading it
// never blocks: a FIFO, a device and a symlink to /dev/zero are refused before any read.
#include "agent/system/config_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

using namespace kvmprof;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("kvmprof-cfg-" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

std::string error_of(const std::string& path) {
  auto text = read_config_file(path);
  EXPECT_FALSE(text.ok()) << path << " was read";
  return text.ok() ? "" : text.error().message();
}

}  // namespace

TEST(ConfigFile, ReadsARegularFile) {
  TempDir dir;
  std::ofstream(dir.path / "a.yaml") << "version: 1\n";
  auto text = read_config_file((dir.path / "a.yaml").string());
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "version: 1\n");
}

TEST(ConfigFile, RefusesDevicesFifosDirectoriesAndSymlinksToThem) {
  TempDir dir;
  ASSERT_EQ(::mkfifo((dir.path / "fifo").c_str(), 0600), 0);
  fs::create_symlink("/dev/zero", dir.path / "zero.yaml");
  EXPECT_NE(error_of("/dev/zero").find("is a character device"), std::string::npos);
  EXPECT_NE(error_of((dir.path / "zero.yaml").string()).find("is a character device"), std::string::npos);
  EXPECT_NE(error_of((dir.path / "fifo").string()).find("is a FIFO"), std::string::npos);  // returns, does not block
  EXPECT_NE(error_of(dir.path.string()).find("is a directory"), std::string::npos);
  EXPECT_NE(error_of((dir.path / "missing").string()).find("No such file"), std::string::npos);
}

TEST(ConfigFile, RefusesAFileLargerThanTheBound) {
  TempDir dir;
  std::ofstream(dir.path / "big.yaml") << std::string(kMaxConfigBytes + 1, '#');
  EXPECT_NE(error_of((dir.path / "big.yaml").string()).find("larger than 1024 KiB"), std::string::npos);
  std::ofstream(dir.path / "max.yaml") << std::string(kMaxConfigBytes, '#');
  EXPECT_TRUE(read_config_file((dir.path / "max.yaml").string()).ok());
}
